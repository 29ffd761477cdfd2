import Foundation
import Primitives

public struct BandStatistics: Codable, Equatable, Sendable {
    public var mean: Double
    public var std: Double
    public var min: Double
    public var max: Double
    public var validFraction: Double

    enum CodingKeys: String, CodingKey {
        case mean, std, min, max
        case validFraction = "valid_fraction"
    }
}

public struct SceneStatistics: Codable, Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// Global scale factor per chip size (keys are the sizes in pixels, as JSON wants string keys).
    public var gsf: [String: Double]
    public var bands: [String: BandStatistics]
}

public enum Statistics {
    public static let defaultChipSizes = [64, 128, 256, 512, 1024]

    /// DeepDEM's global scale factor for `chipSize`: the mean, over random chips of `raster` (at most
    /// `chips` of them, each with at least `minValidFraction` valid pixels), of the chip's height
    /// standard deviation, keeping only chips whose std lies within the 5th–95th percentile of all
    /// of them. `windows` restricts the chips to those rectangles (e.g. the training region): a
    /// chip lies wholly inside one, chosen in proportion to its chip positions when there are
    /// several; windows smaller than a chip are passed over.
    /// The chips are a pure function of `seed` and the size. Nil when no chip has enough valid pixels.
    public static func gsf(_ raster: Raster, chipSize: Int, chips: Int = 256, seed: UInt64 = 0,
                           minValidFraction: Double = 0.5, windows: [PixelWindow]? = nil) throws -> Double? {
        let all = windows ?? [PixelWindow(x: 0, y: 0, width: raster.grid.width, height: raster.grid.height)]
        let fitting = all.filter { chipSize <= $0.width && chipSize <= $0.height }
        guard chipSize > 0, !fitting.isEmpty else {
            let w = all.max { $0.width * $0.height < $1.width * $1.height } ?? PixelWindow(x: 0, y: 0, width: 0, height: 0)
            throw DataError(raster.path, "chip of \(chipSize) px is larger than the \(w.width)×\(w.height) px "
                + (windows == nil ? "scene" : "region"))
        }
        let positions = fitting.map { ($0.width - chipSize + 1) * ($0.height - chipSize + 1) }
        var random = SplitMix64(keys: seed, UInt64(chipSize))
        var buffer = [Float](repeating: 0, count: chipSize * chipSize)
        var stds: [Double] = []
        let needed = max(2, Int((minValidFraction * Double(chipSize * chipSize)).rounded(.up)))
        for _ in 0..<(4 * chips) where stds.count < chips {
            var k = 0
            if fitting.count > 1 {
                var ticket = random.below(positions.reduce(0, +))
                while ticket >= positions[k] { ticket -= positions[k]; k += 1 }
            }
            let w = fitting[k]
            let x = w.x + random.below(w.width - chipSize + 1)
            let y = w.y + random.below(w.height - chipSize + 1)
            try buffer.withUnsafeMutableBufferPointer {
                try raster.read(x: x, y: y, width: chipSize, height: chipSize, into: $0.baseAddress!)
            }
            var count = 0, shift = 0.0, sum = 0.0, squares = 0.0
            for v in buffer where !v.isNaN {
                if count == 0 { shift = Double(v) }
                let d = Double(v) - shift
                sum += d
                squares += d * d
                count &+= 1
            }
            guard count >= needed else { continue }
            let mean = sum / Double(count)
            stds.append(max(0, squares / Double(count) - mean * mean).squareRoot())
        }
        return stds.isEmpty ? nil : trimmedMean(stds)
    }

    /// Mean of the values lying within their own 5th–95th percentile (both ends included). DeepDEM
    /// combined the two bounds with "or", which keeps everything; this keeps the middle.
    public static func trimmedMean(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let low = percentile(sorted, 0.05), high = percentile(sorted, 0.95)
        let kept = sorted.filter { $0 >= low && $0 <= high }
        return kept.reduce(0, +) / Double(kept.count)
    }

    /// Linear interpolation between order statistics of sorted values (NumPy's default).
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down)), upper = Swift.min(lower + 1, sorted.count - 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }

    /// Mean, population std, range and valid fraction of one band, streamed in strips of rows.
    public static func band(_ raster: Raster, stripRows: Int = 256) throws -> BandStatistics {
        let width = raster.grid.width, height = raster.grid.height
        var strip = [Float](repeating: 0, count: Swift.min(stripRows, height) * width)
        var count = 0, shift = 0.0, sum = 0.0, squares = 0.0
        var low = Double.infinity, high = -Double.infinity
        var y = 0
        while y < height {
            let rows = Swift.min(stripRows, height - y)
            try strip.withUnsafeMutableBufferPointer { try raster.read(x: 0, y: y, width: width, height: rows, into: $0.baseAddress!) }
            for i in 0..<rows * width where !strip[i].isNaN {
                let v = Double(strip[i])
                if count == 0 { shift = v }
                let d = v - shift
                sum += d
                squares += d * d
                count &+= 1
                low = Swift.min(low, v)
                high = Swift.max(high, v)
            }
            y += rows
        }
        guard count > 0 else { throw DataError(raster.path, "no valid pixels (all nodata)") }
        let mean = sum / Double(count)
        return BandStatistics(mean: shift + mean, std: Swift.max(0, squares / Double(count) - mean * mean).squareRoot(),
                              min: low, max: high, validFraction: Double(count) / Double(width * height))
    }

    /// `deepdem stats`: every `final_<band>.tif` of the folder (on one grid, `asp_dsm` required),
    /// the gsf for each chip size, the statistics of each band.
    public static func scene(folder: String, chipSizes: [Int] = defaultChipSizes, chips: Int = 256, seed: UInt64 = 0,
                             progress: ((Double) -> Void)? = nil) throws -> SceneStatistics {
        let present = Scene.bandsPresent(in: folder).filter { $0 != Band.aspDSM }
        let scene = try Scene(folder: folder, bands: [Band.aspDSM] + present, target: nil)
        let steps = Double(scene.bands.count + chipSizes.count)
        var bands: [String: BandStatistics] = [:]
        for (i, band) in scene.bands.enumerated() {
            bands[band] = try Statistics.band(scene.input(band)!)
            progress?(Double(i + 1) / steps)
        }
        var gsf: [String: Double] = [:]
        for (i, size) in chipSizes.enumerated() {
            gsf[String(size)] = try Statistics.gsf(scene.aspDSM, chipSize: size, chips: chips, seed: seed)
            progress?(Double(scene.bands.count + i + 1) / steps)
        }
        return SceneStatistics(width: scene.grid.width, height: scene.grid.height, gsf: gsf, bands: bands)
    }
}
