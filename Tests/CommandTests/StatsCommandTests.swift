import Data
import Foundation
import XCTest

final class StatsCommandTests: XCTestCase {
    func scene(_ folder: URL, width: Int = 80, height: Int = 70, asp: @escaping (Int, Int) -> Float = { x, y in Float(x) + Float(y) * 0.5 }) throws -> String {
        let grid = try Grid(width: width, height: height, originX: 500_000, originY: 4_000_000, pixelSize: 1, epsg: 32610)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (band, f) in [(Band.aspDSM, asp), (Band.ndvi, { x, _ in Float(x % 2) })] {
            var values = [Float](repeating: 0, count: grid.pixelCount)
            for y in 0..<height { for x in 0..<width { values[y * width + x] = f(x, y) } }
            try RasterWriter.write(values, grid: grid, nodata: -3.4028234663852886e38, to: Scene.file(folder.path, band), overwrite: true)
        }
        return folder.path
    }

    func testJSONReportsGSFAndBands() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = try scene(folder, asp: { x, y in x < 10 ? .nan : Float(x) * 2 })
        let output = try runDeepDEM(["stats", "--data", path, "--chip-sizes", "16", "32", "--chips", "40"])
        XCTAssertEqual(output.status, 0, output.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["width"] as? Int, 80)
        let gsf = try XCTUnwrap(json["gsf"] as? [String: Double])
        // z = 2x: a fully valid s×s chip has std 2·√((s² − 1)/12).
        XCTAssertEqual(try XCTUnwrap(gsf["16"]), 2 * ((16.0 * 16 - 1) / 12).squareRoot(), accuracy: 0.2)
        XCTAssertEqual(Set(gsf.keys), ["16", "32"])
        let bands = try XCTUnwrap(json["bands"] as? [String: [String: Double]])
        XCTAssertEqual(try XCTUnwrap(bands[Band.aspDSM]?["valid_fraction"]), 70.0 / 80.0, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(bands[Band.ndvi]?["mean"]), 0.5, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(bands[Band.aspDSM]?["min"]), 20)
    }

    func testRefusals() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        assertRefused(try runDeepDEM(["stats", "--data", folder.appendingPathComponent("none").path]), "no such scene folder")
        let path = try scene(folder.appendingPathComponent("a"))
        assertRefused(try runDeepDEM(["stats", "--data", path, "--chip-sizes", "128"]), "does not fit")

        // One pixel wider than asp_dsm: refused, naming the file and the sizes.
        let grid = try Grid(width: 81, height: 70, originX: 500_000, originY: 4_000_000, pixelSize: 1, epsg: 32610)
        let wide = Scene.file(path, Band.ortho1)
        try RasterWriter.write([Float](repeating: 1, count: grid.pixelCount), grid: grid, nodata: nil, to: wide)
        assertRefused(try runDeepDEM(["stats", "--data", path]), "\(wide): grid differs from final_asp_dsm.tif: size 81×70")
        try "not a raster".write(toFile: wide, atomically: true, encoding: .utf8)
        assertRefused(try runDeepDEM(["stats", "--data", path]), "\(wide): not a readable raster")
        try FileManager.default.removeItem(atPath: wide)

        let empty = try scene(folder.appendingPathComponent("b"), asp: { _, _ in .nan })
        assertRefused(try runDeepDEM(["stats", "--data", empty]), "no valid pixels")
        try FileManager.default.removeItem(atPath: Scene.file(empty, Band.aspDSM))
        assertRefused(try runDeepDEM(["stats", "--data", empty]), "final_asp_dsm.tif: missing")
    }
}
