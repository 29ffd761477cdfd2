import Primitives

/// Which side of the scene a chip comes from: the left `trainSplit` of the x extent trains, the
/// rest validates, so no training chip overlaps a validation chip.
public enum Region: String, Sendable {
    case train
    case validation

    /// Columns of the region for a scene `width` pixels wide.
    public func columns(width: Int, trainSplit: Double) -> Range<Int> {
        let split = min(width, max(0, Int((Double(width) * trainSplit).rounded(.down))))
        return self == .train ? 0..<split : split..<width
    }
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
    public let trainSplit: Double
    public let minValidFraction: Double
    public let seed: UInt64
    public let flips: Bool
    public let channelSwap: Bool
    /// Training chips also turn by multiples of 90° (chips are square, so every turn fits).
    public let rotate90: Bool
    /// Usable pixels of each scene inside the region; chips are drawn in proportion to them.
    public let usablePixels: [Int]
    private let maps: [ValidityMap]
    private let lattices: [Lattice]
    private let cumulative: [Int]
    private let swappable: [Bool]

    struct Lattice: Sendable {
        let x0: Int, y0: Int, step: Int, nx: Int, ny: Int
        var count: Int { nx * ny }
    }

    public init(maps: [ValidityMap], region: Region, chipSize: Int, trainSplit: Double = 0.8,
                minValidFraction: Double = 0.5, seed: UInt64, flips: Bool = true, channelSwap: Bool = true, rotate90: Bool = false) throws {
        precondition(!maps.isEmpty, "a sampler needs at least one scene")
        precondition(chipSize > 0 && (0...1).contains(minValidFraction), "bad sampler options")
        let needed = max(1, Int((minValidFraction * Double(chipSize * chipSize)).rounded(.up)))
        var lattices: [Lattice] = []
        var usable: [Int] = []
        for map in maps {
            let grid = map.scene.grid
            let columns = region.columns(width: grid.width, trainSplit: trainSplit)
            guard chipSize <= columns.count, chipSize <= grid.height else {
                throw DataError(map.scene.folder, "chip of \(chipSize) px is larger than the \(region.rawValue) region "
                    + "(\(columns.count)×\(grid.height) px of a \(grid.width)×\(grid.height) scene, train_split \(trainSplit))")
            }
            let step = map.cell
            let x0 = (columns.lowerBound + step - 1) / step * step
            let nx = x0 + chipSize <= columns.upperBound ? (columns.upperBound - chipSize - x0) / step + 1 : 0
            let ny = (grid.height - chipSize) / step + 1
            let lattice = Lattice(x0: x0, y0: 0, step: step, nx: nx, ny: ny)
            var acceptable = 0
            for j in 0..<ny {
                for i in 0..<nx where map.usablePixels(x: x0 + i * step, y: j * step, width: chipSize, height: chipSize) >= needed {
                    acceptable += 1
                }
            }
            lattices.append(lattice)
            usable.append(acceptable > 0 ? map.usablePixels(columns: columns) : 0)
        }
        guard usable.contains(where: { $0 > 0 }) else {
            let where_ = maps.count == 1 ? maps[0].scene.folder : "\(maps.count) scenes"
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
        self.trainSplit = trainSplit
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
        return ChipPlacement(scene: scene, x: lattice.x0 + (position % lattice.nx) * lattice.step,
                             y: lattice.y0 + (position / lattice.nx) * lattice.step,
                             flipHorizontal: flipH, flipVertical: flipV, swapOrthos: swap, rotation: rotation)
    }

    private func acceptable(_ position: Int, _ map: ValidityMap, _ lattice: Lattice) -> Bool {
        let x = lattice.x0 + (position % lattice.nx) * lattice.step
        let y = lattice.y0 + (position / lattice.nx) * lattice.step
        return map.usablePixels(x: x, y: y, width: chipSize, height: chipSize) >= neededPixels
    }
}
