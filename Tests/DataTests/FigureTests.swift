import Data
import Foundation
import XCTest

final class FigureTests: XCTestCase {
    /// A synthetic scene and a "refined" DSM that is the truth raised by 0.5 m.
    func makeScene(_ folder: URL, size: Int = 96) throws -> (scene: String, refined: String) {
        let scene = folder.appendingPathComponent("scene").path
        try SyntheticScene(width: size, height: size, seed: 3).write(to: scene)
        let truth = try Raster(path: Scene.file(scene, Band.lidarDSM))
        let refined = folder.appendingPathComponent("refined.tif").path
        try RasterWriter.write(try truth.readAll().map { $0 + 0.5 }, grid: truth.grid, nodata: -9999, to: refined)
        return (scene, refined)
    }

    func testPanelOfEveryBandWithSharedErrorScale() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (scene, refined) = try makeScene(folder)
        var figure = SceneFigure(data: scene)
        figure.refined = refined
        let png = folder.appendingPathComponent("figure.png").path
        let summary = try figure.write(to: png)
        XCTAssertEqual(summary.panels, ["ortho 1", "ortho 2", "NDVI", "nodata mask", "initial DSM", "lidar DSM", "refined DSM",
                                        "error before", "error after"])

        let info = try gdalinfo(png)
        XCTAssertEqual(info["driverShortName"] as? String, "PNG")
        XCTAssertEqual(info["size"] as? [Int], [summary.width, summary.height])
        let bands = try XCTUnwrap(info["bands"] as? [[String: Any]])
        XCTAssertEqual(bands.count, 3)
        XCTAssertTrue(bands.allSatisfy { $0["type"] as? String == "Byte" })
        // 96 px panels are enlarged 3× (to 288 px), three per row, three rows.
        XCTAssertEqual(summary.width, 2 * 16 + 3 * 288 + 2 * 20)
        XCTAssertFalse(FileManager.default.fileExists(atPath: png + ".aux.xml"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") }, [])

        // The errors, independently: over pixels valid in the DSMs, the truth and nodata_mask.
        let initial = try Raster(path: Scene.file(scene, Band.aspDSM)).readAll()
        let truth = try Raster(path: Scene.file(scene, Band.lidarDSM)).readAll()
        let mask = try Raster(path: Scene.file(scene, Band.nodataMask)).readAll()
        var errors: [Float] = []
        for i in 0..<initial.count where !initial[i].isNaN && !truth[i].isNaN && mask[i] >= 0.5 { errors.append(initial[i] - truth[i]) }
        XCTAssertEqual(summary.compared, errors.count)
        XCTAssertEqual(try XCTUnwrap(summary.maeBefore), errors.map { Double(abs($0)) }.reduce(0, +) / Double(errors.count), accuracy: 1e-4)
        XCTAssertEqual(try XCTUnwrap(summary.maeAfter), 0.5, accuracy: 1e-4)
        let magnitudes = errors.map { abs($0) }.sorted()
        let p98 = Double(magnitudes[Int(0.98 * Double(magnitudes.count - 1))])
        let scale = try XCTUnwrap(summary.errorScale)
        XCTAssertGreaterThanOrEqual(scale, p98)
        XCTAssertLessThanOrEqual(scale, 2.5 * p98, "the next round number, not a far one")
        let mantissa = scale / pow(10, log10(scale).rounded(.down))
        XCTAssertTrue([1, 2, 2.5, 5].contains { abs($0 - mantissa) < 1e-9 }, "\(scale)")

        // Not a blank canvas: every channel varies.
        let stats = try XCTUnwrap((try gdalinfoStats(png)["bands"] as? [[String: Any]]))
        for band in stats { XCTAssertGreaterThan(try XCTUnwrap(band["stdDev"] as? Double), 20) }
    }

    func testWindowReducesLargeAndEnlargesSmallAreas() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (scene, _) = try makeScene(folder, size: 200)
        var figure = SceneFigure(data: scene)
        figure.panelSize = 64
        let small = try figure.write(to: folder.appendingPathComponent("reduced.png").path)
        // 200 px / 64 → blocks of 3 → 67 px panels; cells are at least 160 px wide.
        XCTAssertEqual(small.width, 2 * 16 + 3 * 160 + 2 * 20)
        XCTAssertNil(small.maeAfter)
        XCTAssertEqual(small.panels.last, "error before")
        figure.window = PixelWindow(x: 150, y: 10, width: 40, height: 30)
        figure.panelSize = 120
        figure.columns = 4
        let zoomed = try figure.write(to: folder.appendingPathComponent("zoomed.png").path)
        XCTAssertEqual(zoomed.width, 2 * 16 + 4 * 160 + 3 * 20)
        XCTAssertLessThan(zoomed.compared, 40 * 30 + 1)
    }

    func testBadInputsAreNamed() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (scene, _) = try makeScene(folder, size: 48)
        let png = folder.appendingPathComponent("f.png").path
        func refused(_ figure: SceneFigure, out: String? = nil, _ phrase: String, line: UInt = #line) {
            XCTAssertThrowsError(try figure.write(to: out ?? png), line: line) { error in
                XCTAssertTrue("\(error)".contains(phrase), "expected “\(phrase)” in: \(error)", line: line)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: png), line: line)
        }
        var figure = SceneFigure(data: scene)
        figure.window = PixelWindow(x: 40, y: 0, width: 20, height: 10)
        refused(figure, "is not inside the 48×48 px raster")
        let other = folder.appendingPathComponent("other.tif").path
        try RasterWriter.write([Float](repeating: 1, count: 50 * 48),
                               grid: try Grid(width: 50, height: 48, originX: 580_000, originY: 5_410_000, pixelSize: 1, epsg: 32610),
                               nodata: nil, to: other)
        figure = SceneFigure(data: scene)
        figure.refined = other
        refused(figure, "other.tif: grid differs from final_asp_dsm.tif: size 50×48")
        refused(SceneFigure(data: folder.appendingPathComponent("nothing").path), "no such scene folder")
        refused(SceneFigure(data: scene), out: folder.appendingPathComponent("no/f.png").path, "does not exist")
        figure = SceneFigure(data: scene)
        figure.target = Band.lidarDTM
        try FileManager.default.removeItem(atPath: Scene.file(scene, Band.lidarDTM))
        refused(figure, "final_lidar_dtm_data.tif: missing")

        let grid = try Raster(path: Scene.file(scene, Band.aspDSM)).grid
        try RasterWriter.write([Float](repeating: .nan, count: grid.pixelCount), grid: grid, nodata: -9999,
                               to: Scene.file(scene, Band.aspDSM), overwrite: true)
        refused(SceneFigure(data: scene), "final_asp_dsm.tif: has no valid pixel")

        try Data("x".utf8).write(to: URL(fileURLWithPath: png))
        XCTAssertThrowsError(try SceneFigure(data: scene).write(to: png)) { XCTAssertTrue("\($0)".contains("already exists"), "\($0)") }
    }

    func testHillshadeFacesTheSunAndIsTransparentWhereNodata() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // The left half rises to the east, so it faces west, towards the north-west sun; the right half faces away.
        let width = 300, height = 200
        var dem = [Float](repeating: 0, count: width * height)
        for y in 0..<height { for x in 0..<width { dem[y * width + x] = x < 150 ? Float(x) * 0.5 : Float(300 - x) * 0.5 } }
        for y in 0..<30 { for x in 0..<30 { dem[y * width + x] = .nan } }
        let path = folder.appendingPathComponent("dem.tif").path
        try RasterWriter.write(dem, grid: try testGrid(width: width, height: height), nodata: -9999, to: path)
        let png = folder.appendingPathComponent("shade.png").path
        let size = try Hillshade.write(dem: path, png: png, maxSize: 100)
        XCTAssertEqual(size.width, 100)
        XCTAssertEqual(size.height, 67)
        let info = try gdalinfo(png)
        XCTAssertEqual(info["size"] as? [Int], [100, 67])
        XCTAssertEqual((info["bands"] as? [[String: Any]])?.count, 2)
        func pixel(_ x: Int, _ y: Int) throws -> [Int] {
            String(decoding: try gdalTool("gdallocationinfo", ["-valonly", png, "\(x)", "\(y)"]), as: UTF8.self)
                .split(separator: "\n").compactMap { Int($0) }
        }
        XCTAssertEqual(try pixel(0, 0), [0, 0], "nodata is transparent")
        let lit = try pixel(20, 40), away = try pixel(80, 40)
        XCTAssertEqual(lit[1], 255)
        XCTAssertEqual(away[1], 255)
        // Slope 0.5: about 218 facing the sun, 104 facing away (Lambert, sun 45° high).
        XCTAssertEqual(Double(lit[0]), 218, accuracy: 3)
        XCTAssertEqual(Double(away[0]), 104, accuracy: 3)

        XCTAssertThrowsError(try Hillshade.write(dem: path, png: png)) { XCTAssertTrue("\($0)".contains("already exists"), "\($0)") }
        XCTAssertNoThrow(try Hillshade.write(dem: path, png: png, overwrite: true))
        let text = folder.appendingPathComponent("dem.txt").path
        try "no".write(toFile: text, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Hillshade.write(dem: text, png: folder.appendingPathComponent("x.png").path)) {
            XCTAssertTrue("\($0)".contains("dem.txt: not a readable raster"), "\($0)")
        }
    }

    func gdalinfoStats(_ path: String) throws -> [String: Any] {
        let data = try gdalTool("gdalinfo", ["-json", "-stats", path])
        defer { try? FileManager.default.removeItem(atPath: path + ".aux.xml") }
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}
