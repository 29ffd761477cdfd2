import Foundation

/// The horizontal and vertical shift of a DSM against the truth by Nuth & Kääb (2011): where the DSM
/// is the truth moved by S = (dx, dy) and raised by dz, the difference dh = DSM − truth at a pixel of
/// slope α and aspect ψ is dh ≈ tan α · (dx sin ψ + dy cos ψ) + dz, so dh / tan α against ψ is a
/// cosine whose amplitude and phase give S. Each iteration moves the DSM back by the shift found so
/// far (bilinear resampling), removes the median difference, and fits
///     dh / tan α = dy · cos ψ + dx · sin ψ + c
/// by least squares on the pixels with slope above `minimumSlope`, on stable terrain, within three
/// NMADs of the median (glaciers, trees and buildings that changed would otherwise pull the fit);
/// it stops when the shift moves by less than `tolerance` pixels, or after `maximumIterations`.
public struct Coregistration: Codable, Equatable, Sendable {
    /// Metres east and north that the DSM lies from the truth, and metres above it.
    public var dx: Double, dy: Double, dz: Double
    public var iterations: Int
    /// Pixels of the last fit.
    public var pixels: Int

    public static let tolerance = 0.01
    public static let maximumIterations = 10
    public static let minimumSlopeDegrees = 1.0
    public static let minimumPixels = 100

    /// Grids are the truth's (checked by the caller); `stable` marks the terrain the fit may use
    /// (all of it when nil). `path` names the DSM in errors.
    public static func estimate(dem: [Float], truth: [Float], terrain: Terrain, stable: [Bool]?,
                                ew: Double, ns: Double, path: String) throws -> Coregistration {
        let minTan = Float(tan(minimumSlopeDegrees * Double.pi / 180))
        let candidates = truth.indices.filter {
            !truth[$0].isNaN && !dem[$0].isNaN && terrain.tanSlope[$0] > minTan && !terrain.aspect[$0].isNaN && (stable?[$0] ?? true)
        }
        guard candidates.count >= minimumPixels else {
            throw DataError(path, "cannot be co-registered: \(candidates.count) valid\(stable == nil ? "" : " stable") pixels "
                + "with slope above \(Int(minimumSlopeDegrees))° (at least \(minimumPixels) needed): the rasters are too small or too flat")
        }
        var shift = Coregistration(dx: 0, dy: 0, dz: 0, iterations: 0, pixels: 0)
        while shift.iterations < maximumIterations {
            let moved = Coregistration.shifted(dem, width: terrain.width, height: terrain.height,
                                               columns: shift.dx / ew, rows: -shift.dy / ns)
            var dh: [Double] = [], at: [Int] = []
            dh.reserveCapacity(candidates.count)
            for i in candidates where !moved[i].isNaN {
                dh.append(Double(moved[i]) - Double(truth[i]))
                at.append(i)
            }
            guard dh.count >= minimumPixels else {
                throw DataError(path, "cannot be co-registered: the shift of \(shift.dx), \(shift.dy) m leaves \(dh.count) pixels to fit")
            }
            let center = median(dh)
            let spread = 3 * 1.4826 * median(dh.map { abs($0 - center) })
            // Least squares of y = A cos ψ + B sin ψ + C: the normal equations, 3×3.
            var m = [Double](repeating: 0, count: 9), v = [Double](repeating: 0, count: 3), used = 0
            for (k, i) in at.enumerated() where spread == 0 || abs(dh[k] - center) <= spread {
                let y = (dh[k] - center) / Double(terrain.tanSlope[i])
                let psi = Double(terrain.aspect[i])
                let row = [cos(psi), sin(psi), 1.0]
                for p in 0..<3 {
                    v[p] += row[p] * y
                    for q in 0..<3 { m[p * 3 + q] += row[p] * row[q] }
                }
                used += 1
            }
            guard used >= minimumPixels, let solution = solve3(m, v) else {
                throw DataError(path, "cannot be co-registered: \(used) pixels left after removing outliers, or their aspects do not vary")
            }
            let (north, east) = (solution[0], solution[1])
            shift.dx += east
            shift.dy += north
            shift.iterations += 1
            shift.pixels = used
            if ((east / ew) * (east / ew) + (north / ns) * (north / ns)).squareRoot() < tolerance { break }
        }
        let moved = Coregistration.shifted(dem, width: terrain.width, height: terrain.height,
                                           columns: shift.dx / ew, rows: -shift.dy / ns)
        let stableDH = truth.indices.compactMap { i -> Double? in
            guard !truth[i].isNaN, !moved[i].isNaN, stable?[i] ?? true else { return nil }
            return Double(moved[i]) - Double(truth[i])
        }
        shift.dz = median(stableDH)
        return shift
    }

    /// The DSM moved back onto the truth and lowered by dz: what the statistics are computed on.
    public func applied(to dem: [Float], width: Int, height: Int, ew: Double, ns: Double) -> [Float] {
        Coregistration.shifted(dem, width: width, height: height, columns: dx / ew, rows: -dy / ns).map { $0 - Float(dz) }
    }

    /// z sampled bilinearly at (row + rows, column + columns) of every pixel; NaN where a sample
    /// leaves the grid or touches nodata.
    static func shifted(_ z: [Float], width: Int, height: Int, columns: Double, rows: Double) -> [Float] {
        var out = [Float](repeating: .nan, count: z.count)
        let c0 = Int(floor(columns)), r0 = Int(floor(rows))
        let fc = columns - Double(c0), fr = rows - Double(r0)
        for r in 0..<height {
            let sr = r &+ r0
            guard sr >= 0, sr < height, fr == 0 || sr &+ 1 < height else { continue }
            for c in 0..<width {
                let sc = c &+ c0
                guard sc >= 0, sc < width, fc == 0 || sc &+ 1 < width else { continue }
                let i = sr &* width &+ sc
                let z00 = Double(z[i])
                let z01 = fc == 0 ? z00 : Double(z[i &+ 1])
                let z10 = fr == 0 ? z00 : Double(z[i &+ width])
                let z11 = fc == 0 ? z10 : (fr == 0 ? z01 : Double(z[i &+ width &+ 1]))
                out[r &* width &+ c] = Float((1 - fr) * ((1 - fc) * z00 + fc * z01) + fr * ((1 - fc) * z10 + fc * z11))
            }
        }
        return out
    }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return .nan }
        let s = values.sorted(), n = s.count
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    }

    /// Gaussian elimination with partial pivoting; nil when the system is singular.
    static func solve3(_ a: [Double], _ b: [Double]) -> [Double]? {
        var m = a, v = b
        for col in 0..<3 {
            let pivot = (col..<3).max { abs(m[$0 * 3 + col]) < abs(m[$1 * 3 + col]) }!
            guard abs(m[pivot * 3 + col]) > 1e-12 * max(1, abs(m[0]) + abs(m[4]) + abs(m[8])) else { return nil }
            if pivot != col {
                for k in 0..<3 { m.swapAt(col * 3 + k, pivot * 3 + k) }
                v.swapAt(col, pivot)
            }
            for r in (col + 1)..<3 {
                let f = m[r * 3 + col] / m[col * 3 + col]
                for k in col..<3 { m[r * 3 + k] -= f * m[col * 3 + k] }
                v[r] -= f * v[col]
            }
        }
        var x = [0.0, 0.0, 0.0]
        for r in (0..<3).reversed() {
            var s = v[r]
            for k in (r + 1)..<3 { s -= m[r * 3 + k] * x[k] }
            x[r] = s / m[r * 3 + r]
        }
        return x
    }
}
