import Foundation
import XCTest

/// `deepdem train --print-config` with data roles and stripes: printed, read back, printed the same,
/// and train_split only where it applies.
final class HeldOutConfigTests: XCTestCase {
    func roundTrip(_ arguments: [String]) throws -> [String: Any] {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = try runDeepDEM(["train", "--print-config"] + arguments)
        XCTAssertEqual(first.status, 0, first.stderr)
        let file = folder.appendingPathComponent("config.json")
        try Data(first.stdout.utf8).write(to: file)
        let second = try runDeepDEM(["train", "--print-config", "--config", file.path])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertEqual(second.stdout, first.stdout)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
    }

    func testRolesAndStripesReadBackTheSame() throws {
        let roles = try roundTrip(["--data", "{train: [scenes/a, scenes/b], val: scenes/c, test: [scenes/d]}"])
        let data = try XCTUnwrap(roles["data"] as? [String: [String]])
        XCTAssertEqual(data, ["train": ["scenes/a", "scenes/b"], "val": ["scenes/c"], "test": ["scenes/d"]])
        XCTAssertNil(roles["train_split"])
        XCTAssertEqual(try roundTrip(["--data", "{train: [scenes/a]}"])["data"] as? [String: [String]], ["train": ["scenes/a"]])

        let stripes = try roundTrip(["--data", "scenes/a", "--split", "{stripes: 5, axis: y, val: 3, test: 4}", "--fold", "2"])
        let split = try XCTUnwrap(stripes["split"] as? [String: Any])
        XCTAssertEqual(split["stripes"] as? Int, 5)
        XCTAssertEqual(split["axis"] as? String, "y")
        XCTAssertEqual(split["val"] as? Int, 3)
        XCTAssertEqual(split["test"] as? Int, 4)
        XCTAssertEqual(stripes["fold"] as? Int, 2)
        XCTAssertNil(stripes["train_split"])
        let plain = try roundTrip(["--data", "scenes/a"])
        XCTAssertEqual(plain["train_split"] as? Double, 0.8)
        XCTAssertEqual(plain["fold"] as? Int, 0)
        XCTAssertNil(plain["split"])
    }
}
