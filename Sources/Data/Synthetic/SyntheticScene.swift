import Foundation
import Primitives

/// A synthetic scene with every band of a prepared DeepDEM scene, on a UTM grid (EPSG:32610, 1 m
/// pixels), a pure function of the seed. The truth is fractal terrain (`lidar_dtm_data`) with
/// buildings (flat and gable roofs) and trees (cones and domes) on it (`lidar_data`). `asp_dsm` is
/// that surface degraded the way stereo degrades it: canopies seen 30 % too low, edges smoothed, a
/// sub-metre horizontal and vertical offset, noise growing with slope and in shadow, blunders near
/// tall objects, holes in shadows, on steep edges and here and there. Those errors are mostly
/// systematic and visible in the other bands (NDVI marks trees, orthos show roofs and shadows),
/// so a network can learn to remove them. Orthos are the surface rendered under two suns, as seen
/// through two view angles after orthorectification on `asp_dsm` (its height errors move pixels);
/// `triangulation_error` follows the noise and blunders.
///
/// Rendering goes by strips of rows with a halo wide enough for every neighbourhood operation
/// (shadows, smoothing, displacement), so memory is bounded by a strip whatever the size and the
/// result does not depend on the strip height.
public struct SyntheticScene: Sendable {
    public let width: Int
    public let height: Int
    public let seed: UInt64
    public static let epsg = 32610
    public static let bands = [Band.aspDSM, Band.ortho1, Band.ortho2, Band.ndvi, Band.nodataMask,
                               Band.triangulationError, Band.lidarDSM, Band.lidarDTM]
    /// Nodata declared per band, in the encodings real scenes use: ASP's −FLT_MAX, a lidar
    /// −9999, NaN with no declaration; none where every pixel is valid.
    public static let nodata: [String: Double] = [Band.aspDSM: -Double(Float.greatestFiniteMagnitude),
                                                  Band.lidarDSM: -9999, Band.lidarDTM: -9999]

    static let halo = 96
    static let cell = 40
    /// Longest shadow followed, pixels.
    static let shadowReach = 64
    /// Largest orthorectification displacement, pixels.
    static let maxDisplacement = 10.0

    struct Sun { let azimuth: Double; let elevation: Double }
    static let suns = [Sun(azimuth: 135, elevation: 35), Sun(azimuth: 215, elevation: 50)]
    /// Off-nadir angle and the azimuth of the sensor, per ortho.
    static let views = [(offNadir: 18.0, azimuth: 250.0), (offNadir: 14.0, azimuth: 80.0)]

    public init(width: Int, height: Int, seed: UInt64) {
        precondition(width > 0 && height > 0, "a scene has pixels")
        self.width = width
        self.height = height
        self.seed = seed
    }

    public func grid() throws -> Grid {
        try Grid(width: width, height: height, originX: 580_000, originY: 5_410_000, pixelSize: 1, epsg: SyntheticScene.epsg)
    }

    /// Writes `final_<band>.tif` for every band into `folder` (a `SceneDestination`: a new folder
    /// appears only when complete; an existing folder must not already hold a scene unless
    /// `overwrite`).
    public func write(to folder: String, overwrite: Bool = false, stripRows: Int = 256,
                      progress: ((Double) -> Void)? = nil) throws {
        let destination = try SceneDestination(folder: folder, overwrite: overwrite)
        do {
            let grid = try self.grid()
            let writers = try SyntheticScene.bands.map {
                try RasterWriter(path: Scene.file(destination.writeFolder, $0), grid: grid, nodata: SyntheticScene.nodata[$0],
                                 overwrite: true)
            }
            var y0 = 0
            while y0 < height {
                let rows = min(max(1, stripRows), height - y0)
                let strip = render(y0: y0, rows: rows)
                for (band, writer) in zip(SyntheticScene.bands, writers) {
                    try writer.write(x: 0, y: y0, width: width, height: rows, from: strip[band]!)
                }
                y0 += rows
                progress?(Double(y0) / Double(height))
            }
            for writer in writers { try writer.commit() }
            try destination.finish()
        } catch {
            destination.cleanUp()
            throw error
        }
    }

    /// Every band for rows [y0, y0 + rows), full width.
    public func render(y0: Int, rows: Int) -> [String: [Float]] {
        var layers = Layers(scene: self, y0: y0, rows: rows)
        layers.build()
        return layers.core()
    }
}

/// The working planes of one strip, over the strip plus `halo` on every side (the pure-function
/// noise makes pixels outside the scene just as defined as those inside).
private struct Layers {
    let scene: SyntheticScene
    let noise: Noise
    let y0: Int, rows: Int
    let h = SyntheticScene.halo
    let w: Int
    let ew: Int, eh: Int
    var terrain: [Float], buildings: [Float], trees: [Float], albedo: [Float], greenness: [Float]
    var surface: [Float], slope: [Float]
    var shadow: [[Bool]], render: [[Float]]
    var asp: [Float], aspNoise: [Float], blunder: [Float], hole: [Bool], lidarGap: [Bool]
    var ortho: [[Float]], ndvi: [Float]

    init(scene: SyntheticScene, y0: Int, rows: Int) {
        self.scene = scene
        noise = Noise(seed: scene.seed)
        self.y0 = y0
        self.rows = rows
        w = scene.width
        ew = scene.width + 2 * SyntheticScene.halo
        eh = rows + 2 * SyntheticScene.halo
        let count = ew * eh
        terrain = [Float](repeating: 0, count: count)
        buildings = terrain; trees = terrain; albedo = terrain; greenness = terrain
        surface = terrain; slope = terrain; asp = terrain; aspNoise = terrain; blunder = terrain; ndvi = terrain
        shadow = [[Bool]](repeating: [Bool](repeating: false, count: count), count: 2)
        render = [[Float]](repeating: terrain, count: 2)
        ortho = render
        hole = [Bool](repeating: false, count: count)
        lidarGap = hole
    }

    /// World pixel coordinates of an extended-plane index.
    @inline(__always) func world(_ ex: Int, _ ey: Int) -> (Double, Double) { (Double(ex - h), Double(y0 - h + ey)) }

    mutating func build() {
        groundAndObjects()
        surfaceAndSlope()
        for k in 0..<2 { sunlight(k) }
        stereo()
        for k in 0..<2 { orthorectify(k) }
        vegetationIndex()
    }

    /// Terrain and ground cover, then objects drawn cell by cell.
    mutating func groundAndObjects() {
        for ey in 0..<eh {
            for ex in 0..<ew {
                let (x, y) = world(ex, ey)
                let i = ey * ew + ex
                terrain[i] = Float(320 + 0.05 * x - 0.03 * y + 38 * noise.fractal(x, y, scale: 420, octaves: 6, key: 1))
                let grass = noise.value(x, y, scale: 90, key: 2)
                greenness[i] = Float(0.06 + 0.5 * grass + 0.06 * (noise.value(x, y, scale: 7, key: 3) - 0.5))
                albedo[i] = Float(0.34 - 0.14 * grass + 0.08 * (noise.value(x, y, scale: 5, key: 4) - 0.5))
                lidarGap[i] = noise.value(x, y, scale: 35, key: 5) > 0.9
            }
        }
        let c = SyntheticScene.cell
        let margin = 8
        let top = y0 - h - margin, bottom = y0 + rows + h + margin
        let cy0 = Int((Double(top) / Double(c)).rounded(.down)), cy1 = Int((Double(bottom) / Double(c)).rounded(.down))
        let cx0 = Int((Double(-h - margin) / Double(c)).rounded(.down)), cx1 = Int((Double(w + h + margin) / Double(c)).rounded(.down))
        for cy in cy0...cy1 { for cx in cx0...cx1 { drawCell(cx, cy) } }
    }

    mutating func drawCell(_ cx: Int, _ cy: Int) {
        var random = SplitMix64(keys: scene.seed, 77, UInt64(bitPattern: Int64(cx)), UInt64(bitPattern: Int64(cy)))
        let c = Double(SyntheticScene.cell)
        let ox = Double(cx) * c, oy = Double(cy) * c
        let kind = random.unitDouble()
        var footprint: (x: Double, y: Double, radius: Double)?
        var treeCount: Int
        if kind < 0.45 {
            let long = 12 + 14 * random.unitDouble()
            let short = 8 + (min(long, 18) - 8) * random.unitDouble()
            let radius = (long * long + short * short).squareRoot() / 2
            let centerX = ox + radius + 1 + (c - 2 * radius - 2) * random.unitDouble()
            let centerY = oy + radius + 1 + (c - 2 * radius - 2) * random.unitDouble()
            let angle = Double.pi / 2 * random.unitDouble()
            let eaves = 4 + 12 * random.unitDouble()
            let ridge = random.coin() ? 1.5 + 3 * random.unitDouble() : 0
            let roofAlbedo = 0.15 + 0.45 * random.unitDouble()
            drawBuilding(centerX, centerY, long, short, angle, eaves, ridge, Float(roofAlbedo), Float(0.08 * random.unitDouble()))
            footprint = (centerX, centerY, radius)
            treeCount = random.below(5)
        } else if kind < 0.65 {
            treeCount = 8 + random.below(15)
        } else {
            treeCount = random.below(3)
        }
        for _ in 0..<treeCount {
            let radius = 2 + 3.5 * random.unitDouble()
            let tall = 4 + 3 * radius + 4 * random.unitDouble()
            let tx = ox + c * random.unitDouble(), ty = oy + c * random.unitDouble()
            let conifer = random.coin()
            let tint = Float(0.07 + 0.06 * random.unitDouble()), green = Float(0.62 + 0.2 * random.unitDouble())
            if let f = footprint, ((tx - f.x) * (tx - f.x) + (ty - f.y) * (ty - f.y)).squareRoot() < f.radius + radius { continue }
            drawTree(tx, ty, radius, tall, conifer, tint, green)
        }
    }

    /// A rotated rectangle; the roof is flat in absolute height (on the terrain at its centre),
    /// with a ridge along the long axis for gable roofs.
    mutating func drawBuilding(_ x: Double, _ y: Double, _ long: Double, _ short: Double, _ angle: Double,
                               _ eaves: Double, _ ridge: Double, _ roofAlbedo: Float, _ roofGreen: Float) {
        let base = 320 + 0.05 * x - 0.03 * y + 38 * noise.fractal(x, y, scale: 420, octaves: 6, key: 1)
        let radius = (long * long + short * short).squareRoot() / 2
        let (cosA, sinA) = (cos(angle), sin(angle))
        guard let (xs, ys) = window(x, y, radius) else { return }
        for ey in ys {
            for ex in xs {
                let (i, px, py) = pixel(ex, ey)
                let u = (px - x) * cosA + (py - y) * sinA, v = -(px - x) * sinA + (py - y) * cosA
                guard abs(u) <= long / 2, abs(v) <= short / 2 else { continue }
                let roof = base + eaves + ridge * (1 - abs(v) / (short / 2))
                let above = Float(max(0.5, roof - Double(terrain[i])))
                if above > buildings[i] { buildings[i] = above }
                if above >= trees[i] {
                    albedo[i] = roofAlbedo * (ridge > 0 && v < 0 ? 0.85 : 1)
                    greenness[i] = roofGreen
                }
            }
        }
    }

    mutating func drawTree(_ x: Double, _ y: Double, _ radius: Double, _ tall: Double, _ conifer: Bool, _ tint: Float, _ green: Float) {
        guard let (xs, ys) = window(x, y, radius) else { return }
        for ey in ys {
            for ex in xs {
                let (i, px, py) = pixel(ex, ey)
                let d = ((px - x) * (px - x) + (py - y) * (py - y)).squareRoot() / radius
                guard d < 1 else { continue }
                let crown = conifer ? tall * (1 - 0.75 * d) : tall * (0.45 + 0.55 * (1 - d * d).squareRoot())
                let above = Float(crown)
                guard above > trees[i], above > buildings[i] else { continue }
                trees[i] = above
                albedo[i] = tint * Float(0.7 + 0.3 * crown / tall)
                greenness[i] = green
            }
        }
    }

    /// The plane's columns and rows within `radius` of (x, y), if any.
    func window(_ x: Double, _ y: Double, _ radius: Double) -> (ClosedRange<Int>, ClosedRange<Int>)? {
        let ex0 = max(0, Int((x - radius).rounded(.down)) + h), ex1 = min(ew - 1, Int((x + radius).rounded(.up)) + h)
        let ey0 = max(0, Int((y - radius).rounded(.down)) - y0 + h), ey1 = min(eh - 1, Int((y + radius).rounded(.up)) - y0 + h)
        return ex0 <= ex1 && ey0 <= ey1 ? (ex0...ex1, ey0...ey1) : nil
    }

    /// Index and world coordinates of the centre of a plane pixel.
    func pixel(_ ex: Int, _ ey: Int) -> (Int, Double, Double) {
        let (x, y) = world(ex, ey)
        return (ey * ew + ex, x + 0.5, y + 0.5)
    }

    mutating func surfaceAndSlope() {
        for i in 0..<ew * eh { surface[i] = terrain[i] + max(buildings[i], trees[i]) }
        for ey in 1..<eh - 1 {
            for ex in 1..<ew - 1 {
                let i = ey * ew + ex
                let gx = (surface[i + 1] - surface[i - 1]) / 2, gy = (surface[i + ew] - surface[i - ew]) / 2
                slope[i] = (gx * gx + gy * gy).squareRoot()
            }
        }
    }

    /// Lambert shading and cast shadows (followed towards the sun up to `shadowReach` pixels, and
    /// only as far as the highest surface nearby could still rise above the ray).
    mutating func sunlight(_ k: Int) {
        let sun = SyntheticScene.suns[k]
        let az = sun.azimuth * .pi / 180, el = sun.elevation * .pi / 180
        let sx = sin(az) * cos(el), sy = -cos(az) * cos(el), sz = sin(el)
        let rise = Float(tan(el))
        let reach = SyntheticScene.shadowReach
        let offsets = (1...reach).map { s in
            Int((Double(s) * -cos(az)).rounded()) * ew + Int((Double(s) * sin(az)).rounded())
        }
        let nearbyHighest = blockMaxima(block: reach)
        let blocksAcross = (ew + reach - 1) / reach
        for ey in reach..<eh - reach {
            for ex in reach..<ew - reach {
                let i = ey &* ew &+ ex
                let gx = Double(surface[i + 1] - surface[i - 1]) / 2, gy = Double(surface[i + ew] - surface[i - ew]) / 2
                let lambert = max(0, (-gx * sx - gy * sy + sz) / (gx * gx + gy * gy + 1).squareRoot())
                let z = surface[i]
                let highest = nearbyHighest[(ey / reach) * blocksAcross + ex / reach]
                let steps = min(reach, Int(((highest - z) / rise).rounded(.up)))
                var shaded = false
                var s = 1
                while s <= steps {
                    if surface[i &+ offsets[s - 1]] > z + Float(s) * rise + 0.3 { shaded = true; break }
                    s &+= 1
                }
                shadow[k][i] = shaded
                render[k][i] = albedo[i] * Float(0.28 + 0.72 * (shaded ? 0 : lambert)) * 1.9
            }
        }
    }

    /// For each block of `block`×`block` pixels, the highest surface within one block of it (which
    /// covers every pixel a ray of `block` pixels from inside the block can reach).
    func blockMaxima(block: Int) -> [Float] {
        let across = (ew + block - 1) / block, down = (eh + block - 1) / block
        var own = [Float](repeating: -.infinity, count: across * down)
        for ey in 0..<eh {
            for ex in 0..<ew {
                let b = (ey / block) * across + ex / block
                own[b] = max(own[b], surface[ey &* ew &+ ex])
            }
        }
        var near = own
        for by in 0..<down {
            for bx in 0..<across {
                var m = -Float.infinity
                for ny in max(0, by - 1)...min(down - 1, by + 1) {
                    for nx in max(0, bx - 1)...min(across - 1, bx + 1) { m = max(m, own[ny * across + nx]) }
                }
                near[by * across + bx] = m
            }
        }
        return near
    }

    /// `asp_dsm` and the fields that go with it.
    mutating func stereo() {
        // What correlation sees: canopies 30 % low, then a ~3 px correlation window's smoothing.
        var seen = [Float](repeating: 0, count: ew * eh)
        for i in 0..<ew * eh { seen[i] = terrain[i] + max(buildings[i], 0.7 * trees[i]) }
        let smooth = gaussian(seen, sigma: 1.6)
        let offset = (x: 1.2, y: -0.7), lift: Float = 0.6
        let margin = SyntheticScene.shadowReach
        for ey in margin..<eh - margin {
            for ex in margin..<ew - margin {
                let i = ey * ew + ex
                let (x, y) = world(ex, ey)
                let steep = min(slope[i], 3)
                let dark = shadow[0][i]
                var wobble = Float(0.15 + 0.22 * Double(steep)) * Float(2 * noise.value(x, y, scale: 3, key: 20) - 1)
                wobble += Float(0.06 * (2 * noise.hash(Int(x), Int(y), 21) - 1))
                if dark { wobble *= 2 }
                let objects = smooth[i] - terrain[i]
                var spike: Float = 0
                let b = noise.value(x, y, scale: 5, key: 22)
                if objects > 4, b > 0.8 {
                    spike = Float(6 + 40 * (b - 0.8)) * (noise.value(x, y, scale: 40, key: 23) > 0.5 ? 1 : -1)
                }
                aspNoise[i] = wobble
                blunder[i] = spike
                asp[i] = sample(smooth, Double(ex) + offset.x, Double(ey) + offset.y) + lift + wobble + spike
                hole[i] = (dark && noise.value(x, y, scale: 7, key: 24) > 0.72)
                    || (slope[i] > 2.5 && noise.value(x, y, scale: 4, key: 25) > 0.65)
                    || noise.value(x, y, scale: 25, key: 26) > 0.95
            }
        }
    }

    /// An ortho: the render, sampled where orthorectification on `asp_dsm` puts each pixel — a
    /// height error Δ moves it by Δ·tan(off-nadir) towards the sensor.
    mutating func orthorectify(_ k: Int) {
        let view = SyntheticScene.views[k]
        let t = tan(view.offNadir * .pi / 180), az = view.azimuth * .pi / 180
        let ux = sin(az), uy = -cos(az)
        let limit = SyntheticScene.maxDisplacement
        let margin = SyntheticScene.shadowReach + Int(limit) + 2
        for ey in margin..<eh - margin {
            for ex in margin..<ew - margin {
                let i = ey * ew + ex
                let (x, y) = world(ex, ey)
                let d = min(limit, max(-limit, Double(surface[i] - asp[i] + blunder[i]) * t))
                let value = sample(render[k], Double(ex) + d * ux, Double(ey) + d * uy)
                ortho[k][i] = min(1, max(0, value + Float(0.015 * (2 * noise.hash(Int(x), Int(y), 30 &+ UInt64(k)) - 1))))
            }
        }
    }

    /// NDVI from the greenness of what the first view sees.
    mutating func vegetationIndex() {
        let view = SyntheticScene.views[0]
        let t = tan(view.offNadir * .pi / 180), az = view.azimuth * .pi / 180
        let limit = SyntheticScene.maxDisplacement
        let margin = SyntheticScene.shadowReach + Int(limit) + 2
        for ey in margin..<eh - margin {
            for ex in margin..<ew - margin {
                let i = ey * ew + ex
                let (x, y) = world(ex, ey)
                let d = min(limit, max(-limit, Double(surface[i] - asp[i] + blunder[i]) * t))
                let g = sample(greenness, Double(ex) + d * sin(az), Double(ey) - d * cos(az))
                ndvi[i] = min(1, max(-1, g + Float(0.03 * (2 * noise.hash(Int(x), Int(y), 40) - 1))))
            }
        }
    }

    func sample(_ plane: [Float], _ x: Double, _ y: Double) -> Float {
        let x0 = min(max(0, Int(x.rounded(.down))), ew - 2), y0 = min(max(0, Int(y.rounded(.down))), eh - 2)
        let tx = Float(min(1, max(0, x - Double(x0)))), ty = Float(min(1, max(0, y - Double(y0))))
        let i = y0 * ew + x0
        let top = plane[i] + (plane[i + 1] - plane[i]) * tx
        let bottom = plane[i + ew] + (plane[i + ew + 1] - plane[i + ew]) * tx
        return top + (bottom - top) * ty
    }

    func gaussian(_ plane: [Float], sigma: Double) -> [Float] {
        let radius = Int((3 * sigma).rounded(.up))
        var kernel = (-radius...radius).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        var across = plane, result = plane
        for ey in 0..<eh {
            for ex in radius..<ew - radius {
                var s: Float = 0
                for k in -radius...radius { s += kernel[k + radius] * plane[ey * ew + ex + k] }
                across[ey * ew + ex] = s
            }
        }
        for ey in radius..<eh - radius {
            for ex in 0..<ew {
                var s: Float = 0
                for k in -radius...radius { s += kernel[k + radius] * across[(ey + k) * ew + ex] }
                result[ey * ew + ex] = s
            }
        }
        return result
    }

    /// The strip's own rows, every band, nodata as NaN.
    func core() -> [String: [Float]] {
        let count = w * rows
        var aspOut = [Float](repeating: 0, count: count), mask = aspOut, triangulation = aspOut
        var ortho1 = aspOut, ortho2 = aspOut, vegetation = aspOut, dsm = aspOut, dtm = aspOut
        for r in 0..<rows {
            for x in 0..<w {
                let i = (r + h) &* ew &+ x &+ h, o = r &* w &+ x
                let valid = !hole[i]
                aspOut[o] = valid ? asp[i] : .nan
                mask[o] = valid ? 1 : 0
                triangulation[o] = valid
                    ? 0.1 + 0.6 * abs(aspNoise[i]) + 0.12 * min(slope[i], 3) + (shadow[0][i] ? 0.35 : 0) + 0.25 * abs(blunder[i])
                    : .nan
                ortho1[o] = ortho[0][i]
                ortho2[o] = ortho[1][i]
                vegetation[o] = ndvi[i]
                dsm[o] = lidarGap[i] ? .nan : surface[i]
                dtm[o] = lidarGap[i] ? .nan : terrain[i]
            }
        }
        return [Band.aspDSM: aspOut, Band.ortho1: ortho1, Band.ortho2: ortho2, Band.ndvi: vegetation, Band.nodataMask: mask,
                Band.triangulationError: triangulation, Band.lidarDSM: dsm, Band.lidarDTM: dtm]
    }
}
