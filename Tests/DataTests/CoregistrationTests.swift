import Data
import Foundation
import XCTest

/// Nuth & Kääb co-registration, Horn slope and aspect against gdaldem's, and dilated pixel groups.
final class CoregistrationTests: XCTestCase {
    static let size = 160, pixel = 2.0

    /// Hills 5–40 m high over 320 m, at easting e and northing n metres from the grid's corner.
    static func hills(_ e: Double, _ n: Double) -> Double {
        30 * sin(e / 41) * cos(n / 57) + 12 * sin((e + 2 * n) / 23) + 0.02 * e + 5
    }

    /// Heights on the grid's pixel centres (row 0 north) of hills moved by (dx, dy) and raised by dz.
    static func heights(dx: Double = 0, dy: Double = 0, dz: Double = 0) -> [Float] {
        var z = [Float](repeating: 0, count: size * size)
        for r in 0..<size {
            for c in 0..<size {
                let e = (Double(c) + 0.5) * pixel, n = (Double(size - r) - 0.5) * pixel
                z[r * size + c] = Float(hills(e - dx, n - dy) + dz)
            }
        }
        return z
    }

    func estimate(_ dem: [Float], _ truth: [Float], stable: [Bool]? = nil) throws -> Coregistration {
        let terrain = Terrain(heights: truth, width: Self.size, height: Self.size, ew: Self.pixel, ns: Self.pixel)
        return try Coregistration.estimate(dem: dem, truth: truth, terrain: terrain, stable: stable,
                                           ew: Self.pixel, ns: Self.pixel, path: "dem.tif")
    }

    /// A sub-pixel shift (0.37 px east, −0.61 px north, +0.8 m) is found within 0.05 px and 0.01 m,
    /// and applying it brings the DSM onto the truth far better than before.
    func testRecoversAKnownSubPixelShift() throws {
        let (dx, dy, dz) = (0.37 * Self.pixel, -0.61 * Self.pixel, 0.8)
        let truth = Self.heights(), dem = Self.heights(dx: dx, dy: dy, dz: dz)
        let shift = try estimate(dem, truth)
        XCTAssertEqual(shift.dx / Self.pixel, dx / Self.pixel, accuracy: 0.05)
        XCTAssertEqual(shift.dy / Self.pixel, dy / Self.pixel, accuracy: 0.05)
        XCTAssertEqual(shift.dz, dz, accuracy: 0.01)
        XCTAssertLessThanOrEqual(shift.iterations, Coregistration.maximumIterations)
        XCTAssertGreaterThan(shift.iterations, 1, "one step cannot fit a sub-pixel shift of curved terrain exactly")
        let moved = shift.applied(to: dem, width: Self.size, height: Self.size, ew: Self.pixel, ns: Self.pixel)
        func mae(_ a: [Float]) -> Double {
            let pairs = zip(a, truth).filter { !$0.0.isNaN }
            return pairs.reduce(0) { $0 + abs(Double($1.0 - $1.1)) } / Double(pairs.count)
        }
        XCTAssertLessThan(mae(moved), 0.1 * mae(dem))
    }

    /// A region that changed over most of the scene (a glacier thinning 15 m over two thirds of it)
    /// takes the fit over unless stable terrain leaves it out; with --stable the shift is found as before.
    func testStableTerrainLeavesChangedAreasOut() throws {
        let (dx, dy) = (0.5 * Self.pixel, 0.25 * Self.pixel)
        let truth = Self.heights()
        var dem = Self.heights(dx: dx, dy: dy)
        var stable = [Bool](repeating: true, count: dem.count)
        for r in 10..<150 { for c in 5..<130 { dem[r * Self.size + c] -= 15; stable[r * Self.size + c] = false } }
        let shift = try estimate(dem, truth, stable: stable)
        XCTAssertEqual(shift.dx / Self.pixel, 0.5, accuracy: 0.05)
        XCTAssertEqual(shift.dy / Self.pixel, 0.25, accuracy: 0.05)
        XCTAssertEqual(shift.dz, 0, accuracy: 0.01)
        let unmasked = try estimate(dem, truth)
        XCTAssertEqual(unmasked.dz, -15, accuracy: 0.1, "without --stable the changed area is the terrain the fit sees")
    }

    /// Flat or tiny rasters cannot be fitted: one error naming the DSM.
    func testFlatTerrainIsRefused() {
        let flat = [Float](repeating: 100, count: Self.size * Self.size)
        XCTAssertThrowsError(try estimate(flat, flat)) { error in
            XCTAssertTrue("\(error)".hasPrefix("dem.tif: cannot be co-registered: 0 valid pixels with slope above 1°"), "\(error)")
        }
    }

    /// Slope and aspect equal what `gdaldem slope` and `gdaldem aspect` write for the same raster
    /// (Horn, edges not computed), nodata holes included.
    func testSlopeAndAspectAreGdaldems() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        var z = Self.heights()
        for r in 70..<74 { for c in 30..<33 { z[r * Self.size + c] = .nan } }
        let grid = try Grid(width: Self.size, height: Self.size, originX: 500_000, originY: 5_200_000, pixelSize: Self.pixel, epsg: 32610)
        let dem = folder.appendingPathComponent("dem.tif").path
        try RasterWriter.write(z, grid: grid, nodata: -9999, to: dem)
        let terrain = Terrain(heights: z, width: Self.size, height: Self.size, ew: Self.pixel, ns: Self.pixel)
        for (mode, ours) in [("slope", { terrain.tanSlope[$0].isNaN ? Double.nan : terrain.slopeDegrees($0) }),
                             ("aspect", { Double(terrain.aspect[$0]) * 180 / Double.pi })] as [(String, (Int) -> Double)] {
            let out = folder.appendingPathComponent("\(mode).tif").path
            _ = try gdalTool("gdaldem", [mode, "-q", dem, out])
            let theirs = try Raster(path: out).readAll()
            var compared = 0
            for i in theirs.indices {
                let a = ours(i), b = Double(theirs[i])
                if b.isNaN { XCTAssertTrue(a.isNaN || (mode == "aspect" && terrain.tanSlope[i] == 0), "\(mode) at \(i): \(a), gdaldem none"); continue }
                XCTAssertFalse(a.isNaN, "\(mode) at \(i): none, gdaldem \(b)")
                var d = abs(a - b)
                if mode == "aspect" { d = min(d, 360 - d) }
                // gdaldem works in float32: its aspect of gentle slopes is off by up to ~1e-3°.
                XCTAssertLessThan(d, mode == "slope" ? 1e-4 : 1e-2, "\(mode) at pixel \(i)")
                compared += 1
            }
            XCTAssertGreaterThan(compared, (Self.size - 2) * (Self.size - 2) - 40, mode)
        }
    }

    /// Dilation by n pixels is "some member within the (2n+1)² square", checked by brute force.
    func testDilationIsTheSquareNeighbourhood() {
        let (w, h) = (23, 17)
        var group = PixelGroup(name: "x", width: w, height: h)
        for i in [0, 5 * w + 7, 16 * w + 22, 9 * w + 12, 9 * w + 13] { group.insert(i) }
        for n in [1, 3] {
            let grown = group.dilated(by: n)
            for r in 0..<h {
                for c in 0..<w {
                    var near = false
                    for rr in max(0, r - n)...min(h - 1, r + n) { for cc in max(0, c - n)...min(w - 1, c + n) where group.contains(rr * w + cc) { near = true } }
                    XCTAssertEqual(grown.contains(r * w + c), near, "n \(n) at (\(c), \(r))")
                }
            }
        }
    }
}
