import Foundation
import XCTest

/// `deepdem summary` over hand-made test.json files whose means and deviations are known.
final class SummaryCommandTests: XCTestCase {
    /// A test.json of the shape `deepdem train` writes, with the given overall MAEs and RMSEs.
    func writeReport(_ folder: String, fold: Int, step: Int, initialMAE: Double, refinedMAE: Double, refinedRMSE: Double) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        func metrics(_ mae: Double, _ rmse: Double) -> [String: Any] {
            ["count": 1000 + fold, "bias": 0.1 * Double(fold), "mae": mae, "rmse": rmse, "median": 0.0, "nmad": mae, "le90": 2 * mae]
        }
        let report: [String: Any] = [
            "checkpoint": "best.safetensors", "step": step, "fold": fold,
            "scenes": [["scene": "scenes/a", "window": NSNull(), "output": "test/a.tif",
                        "initial": metrics(initialMAE, 3), "refined": metrics(refinedMAE, refinedRMSE)]],
            "overall": ["initial": metrics(initialMAE, 3), "refined": metrics(refinedMAE, refinedRMSE)],
        ]
        try JSONSerialization.data(withJSONObject: report).write(to: URL(fileURLWithPath: folder + "/test.json"))
    }

    func testFoldsSideBySideWithMeanAndSampleDeviation() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let maes = [0.5, 0.7, 0.9], rmses = [1.0, 2.0, 4.0]
        for k in 0..<3 {
            try writeReport(folder + "/cv/fold_\(k)", fold: k, step: 100 + k, initialMAE: 2, refinedMAE: maes[k], refinedRMSE: rmses[k])
        }
        let runs = (0..<3).map { folder + "/cv/fold_\($0)" }
        let r = try runDeepDEM(["summary"] + runs + ["--json", folder + "/summary.json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines[0].hasPrefix("3 runs: ") && lines[0].contains("(step 102, fold 2)"), r.stdout)
        XCTAssertEqual(lines[1].split(separator: " ").map(String.init), ["metres", "fold_0", "fold_1", "fold_2", "mean", "std"], r.stdout)
        let mae = try XCTUnwrap(lines.first { $0.hasPrefix("refined mae ") }, r.stdout).split(separator: " ").map(String.init)
        XCTAssertEqual(mae.suffix(5), ["0.500", "0.700", "0.900", "0.700", "0.200"], r.stdout)
        let change = try XCTUnwrap(lines.first { $0.hasPrefix("mae change %") }, r.stdout).split(separator: " ").map(String.init)
        XCTAssertEqual(change.suffix(5), ["-75.0", "-65.0", "-55.0", "-65.0", "10.0"], r.stdout)

        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json"))) as? [String: Any])
        let mean = try XCTUnwrap((json["mean"] as? [String: Any])?["refined"] as? [String: Double])
        let std = try XCTUnwrap((json["std"] as? [String: Any])?["refined"] as? [String: Double])
        XCTAssertEqual(mean["mae"]!, 0.7, accuracy: 1e-12)
        XCTAssertEqual(mean["rmse"]!, 7.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(std["mae"]!, 0.2, accuracy: 1e-12)
        // The sample deviation (n − 1) of 1, 2, 4: sqrt(((4/3)² + (1/3)² + (5/3)²) / 2) = sqrt(7/3).
        XCTAssertEqual(std["rmse"]!, (7.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual((json["runs"] as? [[String: Any]])?.map { $0["fold"] as? Int }, [0, 1, 2])

        // An existing --json file stays unless --overwrite.
        assertRefused(try runDeepDEM(["summary"] + runs + ["--json", folder + "/summary.json"]), "summary.json: exists")
        XCTAssertEqual(try runDeepDEM(["summary"] + runs + ["--json", folder + "/summary.json", "--overwrite"]).status, 0)
    }

    func testRunWithoutTestReportIsOneLine() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try writeReport(folder + "/a", fold: 0, step: 1, initialMAE: 2, refinedMAE: 1, refinedRMSE: 1)
        try FileManager.default.createDirectory(atPath: folder + "/b", withIntermediateDirectories: true)
        assertRefused(try runDeepDEM(["summary", folder + "/a", folder + "/b"]),
                      "\(folder)/b/test.json: not found (the run has no test data, or has not finished)")
        try "{\"step\": 3}".write(toFile: folder + "/b/test.json", atomically: true, encoding: .utf8)
        assertRefused(try runDeepDEM(["summary", folder + "/a", folder + "/b"]), "\(folder)/b/test.json: not a test report of deepdem train")
    }
}
