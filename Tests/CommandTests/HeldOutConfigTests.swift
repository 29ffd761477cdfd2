import Foundation
import XCTest

/// `deepdem train --print-config` with data roles and stripes: printed, read back, printed the same,
/// and train_split only where it applies.
final class HeldOutConfigTests: XCTestCase {
    func testRolesAndStripesReadBackTheSame() throws {
        let roles = try printedConfigReadsBack(["--data", "{train: [scenes/a, scenes/b], val: scenes/c, test: [scenes/d]}"])
        let data = try XCTUnwrap(roles["data"] as? [String: [String]])
        XCTAssertEqual(data, ["train": ["scenes/a", "scenes/b"], "val": ["scenes/c"], "test": ["scenes/d"]])
        XCTAssertNil(roles["train_split"])
        XCTAssertEqual(try printedConfigReadsBack(["--data", "{train: [scenes/a]}"])["data"] as? [String: [String]], ["train": ["scenes/a"]])

        let stripes = try printedConfigReadsBack(["--data", "scenes/a", "--split", "{stripes: 5, axis: y, val: 3, test: 4}", "--fold", "2"])
        let split = try XCTUnwrap(stripes["split"] as? [String: Any])
        XCTAssertEqual(split["stripes"] as? Int, 5)
        XCTAssertEqual(split["axis"] as? String, "y")
        XCTAssertEqual(split["val"] as? Int, 3)
        XCTAssertEqual(split["test"] as? Int, 4)
        XCTAssertEqual(stripes["fold"] as? Int, 2)
        XCTAssertNil(stripes["train_split"])
        let plain = try printedConfigReadsBack(["--data", "scenes/a"])
        XCTAssertEqual(plain["train_split"] as? Double, 0.8)
        XCTAssertEqual(plain["fold"] as? Int, 0)
        XCTAssertNil(plain["split"])
    }
}
