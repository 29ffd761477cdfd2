import Foundation

/// Slope and aspect of a height grid by Horn's (1981) 3×3 method, as `gdaldem slope` and
/// `gdaldem aspect` compute them. With the window
///     a b c
///     d e f      (rows run south, columns east; ew, ns the pixel sizes in metres)
///     g h i
/// the gradient is ∂z/∂E = ((c + 2f + i) − (a + 2d + g)) / (8·ew) and ∂z/∂N = ((a + 2b + c) − (g + 2h + i)) / (8·ns);
/// slope = atan |∇z| and aspect is the azimuth (clockwise from north) the slope faces, downhill:
/// atan2(−∂z/∂E, −∂z/∂N). Pixels on the grid's edge or next to nodata have neither (NaN), as
/// gdaldem without -compute_edges; a flat pixel has slope 0 and no aspect.
public struct Terrain: Sendable {
    public let width: Int, height: Int
    /// tan(slope), the steepness |∇z| in metres per metre.
    public let tanSlope: [Float]
    /// Aspect in radians, [0, 2π).
    public let aspect: [Float]

    public init(heights z: [Float], width: Int, height: Int, ew: Double, ns: Double) {
        precondition(z.count == width &* height, "Terrain: \(z.count) heights for \(width)×\(height)")
        self.width = width
        self.height = height
        var tanSlope = [Float](repeating: .nan, count: z.count), aspect = tanSlope
        if width >= 3 && height >= 3 {
            for r in 1..<(height - 1) {
                for c in 1..<(width - 1) {
                    let up = (r &- 1) &* width &+ c, mid = r &* width &+ c, down = (r &+ 1) &* width &+ c
                    let a = Double(z[up &- 1]), b = Double(z[up]), cc = Double(z[up &+ 1])
                    let d = Double(z[mid &- 1]), e = Double(z[mid]), f = Double(z[mid &+ 1])
                    let g = Double(z[down &- 1]), h = Double(z[down]), i = Double(z[down &+ 1])
                    let sum = a + b + cc + d + e + f + g + h + i
                    guard sum.isFinite else { continue }   // NaN anywhere in the window
                    let east = ((cc + 2 * f + i) - (a + 2 * d + g)) / (8 * ew)
                    let north = ((a + 2 * b + cc) - (g + 2 * h + i)) / (8 * ns)
                    tanSlope[mid] = Float((east * east + north * north).squareRoot())
                    if east != 0 || north != 0 {
                        var azimuth = atan2(-east, -north)
                        if azimuth < 0 { azimuth += 2 * Double.pi }
                        aspect[mid] = Float(azimuth)
                    }
                }
            }
        }
        self.tanSlope = tanSlope
        self.aspect = aspect
    }

    /// Slope in degrees, as `gdaldem slope` writes it.
    public func slopeDegrees(_ i: Int) -> Double { atan(Double(tanSlope[i])) * 180 / Double.pi }
}
