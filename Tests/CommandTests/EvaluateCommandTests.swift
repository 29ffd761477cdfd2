import Data
import Foundation
import Primitives
import XCTest

final class EvaluateCommandTests: XCTestCase {
    func write(_ values: [Float], _ name: String, in folder: URL, width: Int = 50) throws -> String {
        let grid = try Grid(width: width, height: values.count / width, originX: 500_000, originY: 4_000_000, pixelSize: 1, epsg: 32610)
        let path = folder.appendingPathComponent(name).path
        try RasterWriter.write(values, grid: grid, nodata: -3.4028234663852886e38, to: path)
        return path
    }

    func testJSONAgreesWithAnIndependentComputation() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let n = 50 * 40
        var random = SplitMix64(seed: 9)
        let truth = (0..<n).map { i in i % 17 == 0 ? Float.nan : Float(500 + 30 * random.unitDouble()) }
        let refined = truth.map { $0 + Float(random.unitDouble() * 2 - 0.8) }
        let initial = (0..<n).map { i in i % 23 == 0 ? Float.nan : truth[i] + Float(random.unitDouble() * 6 - 1) }
        let ndvi = (0..<n).map { _ in Float(random.unitDouble()) }
        let paths = try [("p.tif", refined), ("t.tif", truth), ("i.tif", initial), ("n.tif", ndvi)].map { try write($0.1, $0.0, in: folder) }
        let output = try runDeepDEM(["evaluate", "--prediction", paths[0], "--truth", paths[1], "--initial", paths[2],
                                     "--by-mask", paths[3], "--threshold", "0.3", "--json"])
        XCTAssertEqual(output.status, 0, output.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])

        func expected(_ errors: [Double]) -> [String: Double] {
            let sorted = errors.sorted(), n = Double(errors.count)
            func q(_ s: [Double], _ p: Double) -> Double {
                let pos = p * Double(s.count - 1), lo = Int(pos), hi = min(lo + 1, s.count - 1)
                return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
            }
            let median = q(sorted, 0.5)
            return ["count": n, "bias": errors.reduce(0, +) / n, "mae": errors.map(abs).reduce(0, +) / n,
                    "rmse": (errors.map { $0 * $0 }.reduce(0, +) / n).squareRoot(), "median": median,
                    "nmad": 1.4826 * q(errors.map { abs($0 - median) }.sorted(), 0.5), "le90": q(errors.map(abs).sorted(), 0.9)]
        }
        var all: [[Double]] = [[], []], inside = all
        for i in 0..<n where !truth[i].isNaN && !initial[i].isNaN {
            let e = [Double(refined[i]) - Double(truth[i]), Double(initial[i]) - Double(truth[i])]
            all[0].append(e[0]); all[1].append(e[1])
            if ndvi[i] > 0.3 { inside[0].append(e[0]); inside[1].append(e[1]) }
        }
        func check(_ object: Any?, _ errors: [Double], _ label: String) throws {
            let got = try XCTUnwrap(object as? [String: Double], label)
            for (key, value) in expected(errors) {
                XCTAssertEqual(try XCTUnwrap(got[key], "\(label).\(key)"), value, accuracy: 1e-6 * max(1, abs(value)), "\(label).\(key)")
            }
        }
        try check(json["refined"], all[0], "refined")
        try check(json["initial"], all[1], "initial")
        let byMask = try XCTUnwrap(json["by_mask"] as? [String: Any])
        try check((byMask["inside"] as? [String: Any])?["refined"], inside[0], "inside.refined")
        try check((byMask["inside"] as? [String: Any])?["initial"], inside[1], "inside.initial")

        let table = try runDeepDEM(["evaluate", "--prediction", paths[0], "--truth", paths[1], "--initial", paths[2]])
        XCTAssertEqual(table.status, 0)
        XCTAssertTrue(table.stdout.contains("all refined") && table.stdout.contains("nmad"), table.stdout)
    }

    /// `--region right:0.2` evaluates the right fifth of the grid (what the demo holds out), the
    /// same pixels as the equivalent `--window`, and says which in the JSON.
    func testRegionAndWindowChooseThePixels() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (width, height) = (50, 40)
        var random = SplitMix64(seed: 3)
        let truth = (0..<width * height).map { _ in Float(100 + 20 * random.unitDouble()) }
        // Errors grow with x, so a window in the wrong place gives another MAE.
        let refined = truth.indices.map { truth[$0] + Float($0 % width) * 0.1 }
        let t = try write(truth, "t.tif", in: folder), r = try write(refined, "r.tif", in: folder)
        let byRegion = try runDeepDEM(["evaluate", "--prediction", r, "--truth", t, "--region", "right:0.2", "--json"])
        XCTAssertEqual(byRegion.status, 0, byRegion.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(byRegion.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["window"] as? [String: Int], ["x": 40, "y": 0, "width": 10, "height": 40])
        let metrics = try XCTUnwrap(json["refined"] as? [String: Double])
        let errors = (0..<height).flatMap { y in (40..<width).map { x in Double(refined[y * width + x]) - Double(truth[y * width + x]) } }
        XCTAssertEqual(metrics["count"], Double(errors.count))
        XCTAssertEqual(try XCTUnwrap(metrics["mae"]), errors.map(abs).reduce(0, +) / Double(errors.count), accuracy: 1e-5)
        let byWindow = try runDeepDEM(["evaluate", "--prediction", r, "--truth", t, "--window", "40,0,10,40", "--json"])
        XCTAssertEqual(byWindow.stdout, byRegion.stdout)
        let top = try runDeepDEM(["evaluate", "--prediction", r, "--truth", t, "--region", "top:0.5", "--json"])
        let topJSON = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(top.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(topJSON["window"] as? [String: Int], ["x": 0, "y": 0, "width": 50, "height": 20])

        assertRefused(try runDeepDEM(["evaluate", "--prediction", r, "--truth", t, "--region", "middle:0.2"]),
                      "--region must be left, right, top or bottom and a fraction in (0, 1]")
        assertRefused(try runDeepDEM(["evaluate", "--prediction", r, "--truth", t, "--region", "left:0.01"]),
                      "--region left:0.01: not one whole pixel of the 50×40 px grid")
        assertRefused(try runDeepDEM(["evaluate", "--prediction", r, "--truth", t, "--region", "right:0.2", "--window", "0,0,5,5"]),
                      "--region and --window both choose the pixels")
    }

    func testRefusals() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let a = try write([Float](repeating: 1, count: 100), "a.tif", in: folder, width: 10)
        let b = try write([Float](repeating: 1, count: 110), "b.tif", in: folder, width: 11)
        assertRefused(try runDeepDEM(["evaluate", "--prediction", b, "--truth", a]), "\(b): grid differs")
        assertRefused(try runDeepDEM(["evaluate", "--prediction", a, "--truth", folder.appendingPathComponent("x.tif").path]), "no such file")
        let empty = try write([Float](repeating: .nan, count: 100), "e.tif", in: folder, width: 10)
        assertRefused(try runDeepDEM(["evaluate", "--prediction", empty, "--truth", a]), "no pixel is valid")
    }
}
