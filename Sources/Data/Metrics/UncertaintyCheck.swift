import Foundation

/// How well a per-pixel uncertainty ranks the error (`deepdem evaluate --sigma`): Spearman's rank
/// correlation of σ with |prediction − truth| (ties take their mean rank), and the MAE of the
/// pixels in each σ quintile, lowest σ first. A useful σ has a clearly positive correlation and an
/// MAE that grows from quintile to quintile.
public struct UncertaintyCheck: Codable, Equatable, Sendable {
    public struct Quintile: Codable, Equatable, Sendable {
        public var sigmaLow: Double, sigmaHigh: Double
        public var count: Int
        public var mae: Double

        enum CodingKeys: String, CodingKey {
            case count, mae
            case sigmaLow = "sigma_low", sigmaHigh = "sigma_high"
        }
    }

    public var count: Int
    public var spearman: Double
    public var quintiles: [Quintile]

    /// Over the pixels valid in all three rasters (and non-zero in `mask`, inside `window`); the
    /// pairs are held in memory (8 bytes a pixel).
    public static func run(prediction: String, truth: String, sigma: String, mask: String? = nil,
                           window: PixelWindow? = nil, stripRows: Int = 256) throws -> UncertaintyCheck {
        let t = try Raster(path: truth)
        let rasters = [try Raster(path: prediction), try Raster(path: sigma)] + (try mask.map { [try Raster(path: $0)] } ?? [])
        for raster in rasters {
            if let difference = raster.grid.difference(from: t.grid) {
                throw DataError(raster.path, "grid differs from the truth \(URL(fileURLWithPath: truth).lastPathComponent): \(difference)")
            }
        }
        let w = try (window ?? PixelWindow(x: 0, y: 0, width: t.grid.width, height: t.grid.height)).checked(in: t.grid, path: truth)
        var sigmas: [Float] = [], errors: [Float] = []
        var y = 0
        while y < w.height {
            let rows = min(stripRows, w.height - y)
            let truthRows = try t.read(x: w.x, y: w.y + y, width: w.width, height: rows)
            let strips = try rasters.map { try $0.read(x: w.x, y: w.y + y, width: w.width, height: rows) }
            for i in truthRows.indices where !truthRows[i].isNaN && !strips[0][i].isNaN && !strips[1][i].isNaN {
                if strips.count > 2, strips[2][i].isNaN || strips[2][i] == 0 { continue }
                sigmas.append(strips[1][i])
                errors.append(abs(strips[0][i] - truthRows[i]))
            }
            y += rows
        }
        guard sigmas.count >= 5 else {
            throw DataError(sigma, "\(sigmas.count) pixels are valid in the prediction, the truth and σ at once; at least 5 are needed")
        }
        let bySigma = sigmas.indices.sorted { (sigmas[$0], $0) < (sigmas[$1], $1) }
        var quintiles: [Quintile] = []
        for q in 0..<5 {
            let part = bySigma[(bySigma.count * q / 5)..<(bySigma.count * (q + 1) / 5)]
            let sum = part.reduce(0.0) { $0 + Double(errors[$1]) }
            quintiles.append(Quintile(sigmaLow: Double(sigmas[part.first!]), sigmaHigh: Double(sigmas[part.last!]),
                                      count: part.count, mae: sum / Double(part.count)))
        }
        let rho = pearson(ranks(sigmas, order: bySigma), ranks(errors, order: errors.indices.sorted { (errors[$0], $0) < (errors[$1], $1) }))
        return UncertaintyCheck(count: sigmas.count, spearman: rho, quintiles: quintiles)
    }

    /// 1-based ranks, tied values sharing their mean rank; `order` sorts `values`.
    static func ranks(_ values: [Float], order: [Int]) -> [Double] {
        var rank = [Double](repeating: 0, count: values.count)
        var start = 0
        while start < order.count {
            var end = start
            while end + 1 < order.count, values[order[end + 1]] == values[order[start]] { end += 1 }
            let mean = Double(start + end) / 2 + 1
            for k in start...end { rank[order[k]] = mean }
            start = end + 1
        }
        return rank
    }

    static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count), ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in a.indices {
            let da = a[i] - ma, db = b[i] - mb
            sab += da * db; saa += da * da; sbb += db * db
        }
        return saa > 0 && sbb > 0 ? sab / (saa * sbb).squareRoot() : .nan
    }
}
