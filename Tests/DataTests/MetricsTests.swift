import Data
import Foundation
import Primitives
import XCTest

final class MetricsTests: XCTestCase {
    /// The textbook definitions, on the values in memory: what `Evaluator` must agree with.
    func reference(_ errors: [Double]) -> ErrorMetrics {
        let n = Double(errors.count)
        func quantile(_ values: [Double], _ q: Double) -> Double {
            let sorted = values.sorted()
            let position = q * Double(sorted.count - 1)
            let lower = Int(position.rounded(.down)), upper = min(lower + 1, sorted.count - 1)
            return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
        }
        let median = quantile(errors, 0.5)
        return ErrorMetrics(count: errors.count, bias: errors.reduce(0, +) / n, mae: errors.map(abs).reduce(0, +) / n,
                            rmse: (errors.map { $0 * $0 }.reduce(0, +) / n).squareRoot(), median: median,
                            nmad: 1.4826 * quantile(errors.map { abs($0 - median) }, 0.5), le90: quantile(errors.map(abs), 0.9))
    }

    func assertClose(_ a: ErrorMetrics?, _ b: ErrorMetrics, file: StaticString = #filePath, line: UInt = #line) {
        guard let a else { return XCTFail("missing metrics", file: file, line: line) }
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y, name) in [(a.bias, b.bias, "bias"), (a.mae, b.mae, "mae"), (a.rmse, b.rmse, "rmse"), (a.median, b.median, "median"),
                             (a.nmad, b.nmad, "nmad"), (a.le90, b.le90, "le90")] {
            XCTAssertEqual(x, y, accuracy: 1e-9 * max(1, abs(y)), name, file: file, line: line)
        }
    }

    func testMetricsAgreeWithAnIndependentComputation() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 83, height: 61)
        var random = SplitMix64(seed: 42)
        func field(_ f: (Int) -> Float) -> [Float] { (0..<grid.pixelCount).map(f) }
        let truth = field { i in i % 37 == 0 ? .nan : Float(100 + random.unitDouble() * 50) }
        // Many repeated errors (quantised to 0.25 m), so ranks fall inside runs of equal values.
        let refined = field { i in truth[i] + Float((random.unitDouble() * 8 - 3).rounded() * 0.25) }
        let initial = field { i in i % 53 == 0 ? .nan : truth[i] + Float(random.unitDouble() * 10 - 2) }
        let mask = field { i in i % 11 == 0 ? 0 : (i % 29 == 0 ? .nan : 1) }
        let classes = field { i in i % 31 == 0 ? .nan : Float(random.unitDouble()) }
        let paths = ["p", "t", "i", "m", "c"].map { folder.appendingPathComponent("\($0).tif").path }
        for (values, path) in zip([refined, truth, initial, mask, classes], paths) {
            try RasterWriter.write(values, grid: grid, nodata: -9999, to: path)
        }
        var all: ([Double], [Double]) = ([], []), inside = all, outside = all
        for i in 0..<grid.pixelCount where !truth[i].isNaN && !initial[i].isNaN && mask[i] == 1 {
            let pair = (Double(refined[i]) - Double(truth[i]), Double(initial[i]) - Double(truth[i]))
            all.0.append(pair.0); all.1.append(pair.1)
            if classes[i].isNaN { continue }
            if classes[i] > 0.3 { inside.0.append(pair.0); inside.1.append(pair.1) } else { outside.0.append(pair.0); outside.1.append(pair.1) }
        }
        for limit in [1 << 20, 7] {
            var evaluator = Evaluator(prediction: paths[0], truth: paths[1], initial: paths[2], mask: paths[3],
                                      classMask: paths[4], classThreshold: 0.3)
            evaluator.collectLimit = limit
            evaluator.stripRows = 10
            let result = try evaluator.run()
            assertClose(result.all.refined, reference(all.0))
            assertClose(result.all.initial, reference(all.1))
            assertClose(result.inside?.refined, reference(inside.0))
            assertClose(result.inside?.initial, reference(inside.1))
            assertClose(result.outside?.refined, reference(outside.0))
            assertClose(result.outside?.initial, reference(outside.1))
        }
        let plain = try Evaluator(prediction: paths[0], truth: paths[1]).run()
        XCTAssertNil(plain.all.initial)
        XCTAssertNil(plain.inside)
        XCTAssertEqual(plain.all.refined.count, truth.filter { !$0.isNaN }.count)
    }

    func testSmallCasesByHand() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 4, height: 1)
        let p = folder.appendingPathComponent("p.tif").path, t = folder.appendingPathComponent("t.tif").path
        try RasterWriter.write([1, 2, 4, 10], grid: grid, nodata: nil, to: p)
        try RasterWriter.write([0, 0, 0, 0], grid: grid, nodata: nil, to: t)
        let m = try Evaluator(prediction: p, truth: t).run().all.refined
        XCTAssertEqual(m.count, 4)
        XCTAssertEqual(m.bias, 4.25)
        XCTAssertEqual(m.median, 3)
        XCTAssertEqual(m.le90, 8.2, accuracy: 1e-12)   // 4 + 0.7·(10 − 4)
        XCTAssertEqual(m.nmad, 1.4826 * 1.5, accuracy: 1e-12)   // |e − 3| = 2, 1, 1, 7
        XCTAssertEqual(m.rmse, (121.0 / 4).squareRoot(), accuracy: 1e-12)
    }

    func testRefusals() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let p = folder.appendingPathComponent("p.tif").path, t = folder.appendingPathComponent("t.tif").path
        try RasterWriter.write([1, 2, 3, 4], grid: try testGrid(width: 4, height: 1), nodata: nil, to: p)
        try RasterWriter.write([1, 2, 3, 4, 5], grid: try testGrid(width: 5, height: 1), nodata: nil, to: t)
        XCTAssertThrowsError(try Evaluator(prediction: p, truth: t).run()) {
            XCTAssertTrue(String(describing: $0).hasPrefix("\(p): grid differs"), "\($0)")
        }
        try RasterWriter.write([.nan, .nan, .nan, .nan, .nan], grid: try testGrid(width: 5, height: 1), nodata: nil, to: p, overwrite: true)
        XCTAssertThrowsError(try Evaluator(prediction: p, truth: t).run()) {
            XCTAssertTrue(String(describing: $0).contains("no pixel is valid"), "\($0)")
        }
    }
}
