import Data
import Foundation
import XCTest

final class StatisticsTests: XCTestCase {
    func testBandStatisticsMatchGDAL() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 97, height: 70)
        try writeScene(folder, grid: grid, bands: [
            Band.aspDSM: { x, y in (x * 7 + y * 3) % 19 == 0 ? .nan : Float(x) * 0.3 + Float(y * y) * 0.02 + 1200 },
            Band.ndvi: { x, y in Float((x * y) % 13) / 13 },
        ])
        let statistics = try Statistics.scene(folder: folder.path, chipSizes: [16, 32], chips: 64, seed: 3)
        XCTAssertEqual(statistics.width, 97)
        XCTAssertEqual(Set(statistics.bands.keys), [Band.aspDSM, Band.ndvi])
        for band in [Band.aspDSM, Band.ndvi] {
            let path = Scene.file(folder.path, band)
            let data = try gdalTool("gdalinfo", ["-json", "-stats", path])
            try? FileManager.default.removeItem(atPath: path + ".aux.xml")
            let info = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
            // The band's metadata carries GDAL's statistics at full precision (the JSON fields are rounded).
            let metadata = try XCTUnwrap(((info["bands"] as? [[String: Any]])?.first?["metadata"] as? [String: [String: String]])?[""])
            func gdal(_ key: String) throws -> Double { try XCTUnwrap(Double(XCTUnwrap(metadata["STATISTICS_\(key)"]))) }
            let ours = try XCTUnwrap(statistics.bands[band])
            XCTAssertEqual(ours.mean, try gdal("MEAN"), accuracy: 1e-9 * max(1, ours.mean))
            XCTAssertEqual(ours.std, try gdal("STDDEV"), accuracy: 1e-7)
            XCTAssertEqual(ours.min, try gdal("MINIMUM"), accuracy: 1e-9 * max(1, abs(ours.min)))
            XCTAssertEqual(ours.max, try gdal("MAXIMUM"), accuracy: 1e-9 * max(1, abs(ours.max)))
            let validPercent = try gdal("VALID_PERCENT")
            XCTAssertEqual(ours.validFraction * 100, validPercent, accuracy: 0.005, "GDAL prints two decimals")
        }
        XCTAssertEqual(statistics.gsf.keys.sorted(), ["16", "32"])
        XCTAssertEqual(try Statistics.scene(folder: folder.path, chipSizes: [16, 32], chips: 64, seed: 3), statistics)
    }

    func testGSFOfARampIsItsChipStd() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // z = 2x: every s×s chip has std 2·√((s² − 1)/12), whatever its position.
        let path = folder.appendingPathComponent("ramp.tif").path
        let grid = try testGrid(width: 120, height: 80)
        try RasterWriter.write((0..<grid.pixelCount).map { Float(2 * ($0 % 120)) }, grid: grid, nodata: nil, to: path)
        let gsf = try XCTUnwrap(Statistics.gsf(Raster(path: path), chipSize: 32, chips: 50))
        XCTAssertEqual(gsf, 2 * ((32.0 * 32 - 1) / 12).squareRoot(), accuracy: 1e-6)
        XCTAssertThrowsError(try Statistics.gsf(Raster(path: path), chipSize: 81))
    }

    func testTrimmedMeanKeepsTheMiddle() {
        // 0…99 plus an outlier: the 5th/95th percentiles are 5 and 95, the mean of 5…95 is 50.
        XCTAssertEqual(Statistics.trimmedMean((0..<100).map(Double.init) + [10_000]), 50)
        XCTAssertEqual(Statistics.trimmedMean([3]), 3)
    }

    func testAllNodataIsRefused() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try writeScene(folder, grid: try testGrid(width: 16, height: 16), bands: [Band.aspDSM: { _, _ in .nan }])
        XCTAssertThrowsError(try Statistics.scene(folder: folder.path, chipSizes: [8])) {
            XCTAssertEqual(String(describing: $0), "\(Scene.file(folder.path, Band.aspDSM)): no valid pixels (all nodata)")
        }
    }
}
