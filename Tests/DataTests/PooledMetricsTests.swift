import Data
import Foundation
import XCTest

/// Several evaluations pooled give exactly the evaluation of one raster that holds all their pixels.
final class PooledMetricsTests: XCTestCase {
    func testPoolingEqualsOneRasterOfAllThePixels() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        func file(_ name: String) -> String { folder.appendingPathComponent(name).path }
        func value(_ x: Int, _ y: Int, _ k: Int) -> Float {
            (x * 7 + y * 13 + k) % 17 == 0 ? .nan : Float(sin(Double(x * 3 + y * 5 + k)) * Double(k + 1))
        }
        let nodata = -3.4028234663852886e38
        // Part a: rows 0..<20 of the whole, part b: rows 20..<50 (with a window of columns 4..<30 counting).
        let whole = try testGrid(width: 30, height: 50), top = try testGrid(width: 30, height: 20), bottom = try testGrid(width: 30, height: 30)
        for (k, band) in ["prediction", "truth", "initial"].enumerated() {
            let all = (0..<whole.pixelCount).map { value($0 % 30, $0 / 30, k) }
            try RasterWriter.write(all, grid: whole, nodata: nodata, to: file("whole-\(band).tif"))
            try RasterWriter.write(Array(all[0..<600]), grid: top, nodata: nodata, to: file("a-\(band).tif"))
            try RasterWriter.write(Array(all[600...]), grid: bottom, nodata: nodata, to: file("b-\(band).tif"))
        }
        func evaluator(_ part: String) -> Evaluator {
            var e = Evaluator(prediction: file("\(part)-prediction.tif"), truth: file("\(part)-truth.tif"), initial: file("\(part)-initial.tif"))
            e.stripRows = 7
            return e
        }
        let pooled = try Evaluator.pooled([evaluator("a"), evaluator("b")])
        XCTAssertEqual(pooled, try evaluator("whole").run())
        XCTAssertNotEqual(pooled, try evaluator("a").run())

        // Windows: the top's last 5 rows and the bottom's first 10 are rows 15..<30 of the whole.
        var a = evaluator("a"), b = evaluator("b"), w = evaluator("whole")
        a.window = PixelWindow(x: 0, y: 15, width: 30, height: 5)
        b.window = PixelWindow(x: 0, y: 0, width: 30, height: 10)
        w.window = PixelWindow(x: 0, y: 15, width: 30, height: 15)
        XCTAssertEqual(try Evaluator.pooled([a, b]), try w.run())
    }
}
