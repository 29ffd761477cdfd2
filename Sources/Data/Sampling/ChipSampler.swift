import Primitives

/// Which role a sampler draws for: training chips (a fresh draw each step, flipped and swapped) or
/// validation chips (fixed by the seed, unaugmented). Where they lie is the sampler's windows.
public enum Region: String, Sendable {
    case train
    case validation
}

/// Where one chip comes from and how it is augmented.
public struct ChipPlacement: Equatable, Sendable, CustomStringConvertible {
    public var scene: Int
    public var x: Int
    public var y: Int
    public var flipHorizontal: Bool
    public var flipVertical: Bool
    public var swapOrthos: Bool
    /// Quarter turns counterclockwise (numpy's and torch's rot90 over rows and columns), applied
    /// after the flips; taken modulo 4. With the flips, the 8 symmetries of the square.
    public var rotation: Int

    public init(scene: Int, x: Int, y: Int, flipHorizontal: Bool = false, flipVertical: Bool = false, swapOrthos: Bool = false,
                rotation: Int = 0) {
        self.scene = scene
        self.x = x
        self.y = y
        self.flipHorizontal = flipHorizontal
        self.flipVertical = flipVertical
        self.swapOrthos = swapOrthos
        self.rotation = rotation
    }

    public var description: String {
        "scene \(scene) (\(x), \(y))\(flipHorizontal ? " flipH" : "")\(flipVertical ? " flipV" : "")\(swapOrthos ? " swap" : "")"
            + (rotation & 3 != 0 ? " rot90×\(rotation & 3)" : "")
    }
}

/// Counts of usable pixels (see `WindowPlanes`) per cell of `cell`×`cell` pixels, as a summed-area
/// table, read once per scene by streaming strips. It answers "how many usable pixels has this
/// chip" without reading the chip, which is what lets chip positions be a pure function of the seed.
public final class ValidityMap: @unchecked Sendable {
    public let scene: Scene
    public let cell: Int
    let columns: Int
    let rows: Int
    /// (rows + 1) × (columns + 1), entry [r][c] = usable pixels in cells above r and left of c.
    let table: [Int64]

    public init(scene: Scene, cell: Int = 4, progress: ((Double) -> Void)? = nil) throws {
        precondition(cell > 0, "cell size must be positive")
        let width = scene.grid.width, height = scene.grid.height
        let columns = (width + cell - 1) / cell
        let rows = (height + cell - 1) / cell
        var table = [Int64](repeating: 0, count: (rows + 1) * (columns + 1))
        let planes = WindowPlanes(scene: scene)
        let stripRows = max(cell, (256 / cell) * cell)
        var cellCounts = [Int64](repeating: 0, count: columns)
        var y0 = 0
        while y0 < height {
            let h = min(stripRows, height - y0)
            try planes.load(x: 0, y: y0, width: width, height: h, withTarget: true)
            var r0 = 0
            while r0 < h {
                for c in 0..<columns { cellCounts[c] = 0 }
                planes.valid.withUnsafeBufferPointer { v in
                    for r in r0..<min(r0 + cell, h) {
                        let row = r &* width
                        for x in 0..<width where v[row &+ x] != 0 { cellCounts[x / cell] &+= 1 }
                    }
                }
                let cellRow = (y0 + r0) / cell
                let above = cellRow * (columns + 1), here = (cellRow + 1) * (columns + 1)
                var running: Int64 = 0
                for c in 0..<columns {
                    running &+= cellCounts[c]
                    table[here + c + 1] = table[above + c + 1] &+ running
                }
                r0 += cell
            }
            y0 += h
            progress?(Double(y0) / Double(height))
        }
        self.scene = scene
        self.cell = cell
        self.columns = columns
        self.rows = rows
        self.table = table
    }

    /// The summed-area table, to hand a map built once to other processes (see `init(scene:cell:table:)`).
    public var summedTable: [Int64] { table }

    /// A map built elsewhere from the same scene (its `summedTable`), so that only one process of
    /// a training job has to read the whole scene.
    public init(scene: Scene, cell: Int, table: [Int64]) throws {
        let columns = (scene.grid.width + cell - 1) / cell, rows = (scene.grid.height + cell - 1) / cell
        guard cell > 0, table.count == (rows + 1) * (columns + 1) else {
            throw DataError(scene.folder, "validity map of \(table.count) entries does not fit a \(scene.grid.width)×\(scene.grid.height) scene")
        }
        self.scene = scene
        self.cell = cell
        self.columns = columns
        self.rows = rows
        self.table = table
    }

    /// Usable pixels in the whole cells inside the window: exact for windows on cell boundaries,
    /// a lower bound otherwise.
    public func usablePixels(x: Int, y: Int, width: Int, height: Int) -> Int {
        let c0 = (x + cell - 1) / cell, r0 = (y + cell - 1) / cell
        let c1 = min(columns, (x + width) / cell), r1 = min(rows, (y + height) / cell)
        guard c1 > c0, r1 > r0 else { return 0 }
        let stride = columns + 1
        return Int(table[r1 * stride + c1] - table[r0 * stride + c1] - table[r1 * stride + c0] + table[r0 * stride + c0])
    }

    /// Usable pixels in a band of columns, over the full height.
    public func usablePixels(columns range: Range<Int>) -> Int {
        usablePixels(x: range.lowerBound, y: 0, width: range.count, height: scene.grid.height)
    }
}

/// Draws chips for training or validation. Every placement is a pure function of (seed, step,
/// index in the global batch) — of (seed, index) for validation — never of the rank count or of
/// what was drawn before. Positions lie on the validity map's cell lattice (4 px by default) so a
/// chip's usable-pixel count is known without reading it; a position below `minValidFraction`
/// is redrawn from the same keyed stream, so every chip has usable pixels and no loss divides by 0.
public final class ChipSampler: Sendable {
    public let chipSize: Int
    public let region: Region
    public let minValidFraction: Double
    public let seed: UInt64
    public let flips: Bool
    public let channelSwap: Bool
    /// Training chips also turn by multiples of 90° (chips are square, so every turn fits).
    public let rotate90: Bool
    /// Usable pixels of each scene inside its windows; chips are drawn in proportion to them.
    public let usablePixels: [Int]
    private let maps: [ValidityMap]
    private let lattices: [Lattice]
    private let cumulative: [Int]
    private let swappable: [Bool]

    /// Chip positions of one scene: one grid of `step` per window, numbered window after window.
    struct Lattice: Sendable {
        struct Piece: Sendable {
            let x0: Int, y0: Int, nx: Int, ny: Int, first: Int
        }
        let step: Int
        let pieces: [Piece]
        var count: Int { pieces.last.map { $0.first + $0.nx * $0.ny } ?? 0 }

        /// The top-left pixel of the chip at `position` (0 ..< count).
        func origin(_ position: Int) -> (x: Int, y: Int) {
            var k = pieces.count - 1
            while pieces[k].first > position { k -= 1 }
            let p = pieces[k], i = position &- p.first
            return (p.x0 &+ (i % p.nx) &* step, p.y0 &+ (i / p.nx) &* step)
        }
    }

    /// The sampler of `train_split`: the left `trainSplit` of each scene trains, the rest validates.
    public convenience init(maps: [ValidityMap], region: Region, chipSize: Int, trainSplit: Double = 0.8,
                            minValidFraction: Double = 0.5, seed: UInt64, flips: Bool = true, channelSwap: Bool = true,
                            rotate90: Bool = false) throws {
        let windows = maps.map { map in
            let split = SceneRegions.trainSplit(trainSplit, width: map.scene.grid.width, height: map.scene.grid.height)
            return region == .train ? split.train : split.validation
        }
        try self.init(maps: maps, region: region, windows: windows, chipSize: chipSize, minValidFraction: minValidFraction,
                      seed: seed, flips: flips, channelSwap: channelSwap, rotate90: rotate90)
    }

    /// Chips of `region` from `windows[s]`, the rectangles of scene `s` it may take them from (none:
    /// the scene takes no part). A window too small for a chip gives none; a scene whose windows
    /// are all too small is refused.
    public init(maps: [ValidityMap], region: Region, windows: [[PixelWindow]], chipSize: Int,
                minValidFraction: Double = 0.5, seed: UInt64, flips: Bool = true, channelSwap: Bool = true,
                rotate90: Bool = false) throws {
        precondition(!maps.isEmpty && windows.count == maps.count, "a sampler needs at least one scene and its windows")
        precondition(chipSize > 0 && (0...1).contains(minValidFraction), "bad sampler options")
        let needed = max(1, Int((minValidFraction * Double(chipSize * chipSize)).rounded(.up)))
        var lattices: [Lattice] = []
        var usable: [Int] = []
        for (map, rectangles) in zip(maps, windows) {
            let grid = map.scene.grid
            let fitting = rectangles.filter { chipSize <= $0.width && chipSize <= $0.height }
            if let largest = rectangles.max(by: { min($0.width, $0.height) < min($1.width, $1.height) }), fitting.isEmpty {
                throw DataError(map.scene.folder, "chip of \(chipSize) px is larger than the \(region.rawValue) region "
                    + "(\(largest.width)×\(largest.height) px at (\(largest.x), \(largest.y)) of a \(grid.width)×\(grid.height) px scene)")
            }
            let step = map.cell
            var pieces: [Lattice.Piece] = []
            var counted: [PixelWindow] = []
            var first = 0
            for w in fitting {
                func axis(_ start: Int, _ length: Int) -> (origin: Int, count: Int) {
                    let origin = (start + step - 1) / step * step
                    return (origin, origin + chipSize <= start + length ? (start + length - chipSize - origin) / step + 1 : 0)
                }
                let (x0, nx) = axis(w.x, w.width), (y0, ny) = axis(w.y, w.height)
                guard nx > 0, ny > 0 else { continue }
                pieces.append(Lattice.Piece(x0: x0, y0: y0, nx: nx, ny: ny, first: first))
                counted.append(w)
                first += nx * ny
            }
            let lattice = Lattice(step: step, pieces: pieces)
            var acceptable = 0
            for p in pieces {
                for j in 0..<p.ny {
                    for i in 0..<p.nx where map.usablePixels(x: p.x0 + i * step, y: p.y0 + j * step, width: chipSize, height: chipSize) >= needed {
                        acceptable += 1
                    }
                }
            }
            lattices.append(lattice)
            usable.append(acceptable > 0 ? counted.reduce(0) { $0 + map.usablePixels(x: $1.x, y: $1.y, width: $1.width, height: $1.height) } : 0)
        }
        guard usable.contains(where: { $0 > 0 }) else {
            let taking = zip(maps, windows).filter { !$1.isEmpty }.map(\.0)
            let where_ = taking.count == 1 ? taking[0].scene.folder : "\(taking.count) scenes"
            throw DataError(where_, "no \(chipSize) px chip of the \(region.rawValue) region has \(Int(minValidFraction * 100)) % usable pixels "
                + "(inputs, target and nodata_mask all valid)")
        }
        var running = 0
        cumulative = usable.map { running += $0; return running }
        self.maps = maps
        self.lattices = lattices
        self.usablePixels = usable
        self.region = region
        self.chipSize = chipSize
        self.minValidFraction = minValidFraction
        self.seed = seed
        self.flips = flips && region == .train
        self.channelSwap = channelSwap && region == .train
        self.rotate90 = rotate90 && region == .train
        swappable = maps.map { $0.scene.orthoChannels != nil }
        neededPixels = needed
    }

    private let neededPixels: Int

    /// The chip at position `index` of global batch `step` (validation ignores `step`).
    public func chip(step: Int, index: Int) -> ChipPlacement {
        var random = SplitMix64(keys: seed, region == .train ? 1 : 2, UInt64(bitPattern: Int64(region == .train ? step : 0)),
                                UInt64(bitPattern: Int64(index)))
        let ticket = Int(random.next() % UInt64(cumulative.last!))
        let scene = cumulative.firstIndex { ticket < $0 }!
        let map = maps[scene], lattice = lattices[scene]
        var position = -1
        for _ in 0..<256 {
            let candidate = random.below(lattice.count)
            if acceptable(candidate, map, lattice) { position = candidate; break }
        }
        if position < 0 {
            // Rare (scenes mostly empty): walk the lattice from a drawn start; the constructor
            // proved an acceptable position exists.
            let start = random.below(lattice.count)
            for k in 0..<lattice.count {
                let candidate = (start + k) % lattice.count
                if acceptable(candidate, map, lattice) { position = candidate; break }
            }
        }
        let flipH = flips && random.coin()
        let flipV = flips && random.coin()
        let swap = channelSwap && swappable[scene] && random.coin()
        // Drawn last and only when asked for, so that runs without it draw what they always did.
        // Four turns on the four flip pairs give each of the square's 8 symmetries twice.
        let rotation = rotate90 ? random.below(4) : 0
        let (x, y) = lattice.origin(position)
        return ChipPlacement(scene: scene, x: x, y: y, flipHorizontal: flipH, flipVertical: flipV, swapOrthos: swap,
                             rotation: rotation)
    }

    private func acceptable(_ position: Int, _ map: ValidityMap, _ lattice: Lattice) -> Bool {
        let (x, y) = lattice.origin(position)
        return map.usablePixels(x: x, y: y, width: chipSize, height: chipSize) >= neededPixels
    }
}
