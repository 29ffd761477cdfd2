import Foundation
import XCTest

/// YAML and JSON configurations (`train --config`, `prepare --config`, and YAML values of train's
/// flags) within bounds: nesting deep enough to overflow the parser's stack, aliases that expand
/// without end, keys given twice and oversized files are refused with one line naming the file.
final class ConfigLimitsTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try makeCommandFolder() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func file(_ name: String, _ text: String) throws -> String {
        let path = folder.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testDeepNestingIsRefused() throws {
        let n = 5000
        let flow = try file("flow.yaml", "data: " + String(repeating: "[", count: n) + String(repeating: "]", count: n) + "\n")
        assertRefused(try runDeepDEM(["train", "--config", flow]), "\(flow): line 1: nested deeper than 64 levels")
        let block = try file("block.yaml", "data:\n" + String(repeating: "- ", count: n) + "x\n")
        assertRefused(try runDeepDEM(["train", "--config", block]), "\(block): line 2: nested deeper than 64 levels")
        let json = try file("deep.json", "{\"data\": " + String(repeating: "{\"a\": ", count: n) + "1" + String(repeating: "}", count: n + 1))
        assertRefused(try runDeepDEM(["prepare", "--config", json]), "\(json): line 1: nested deeper than 64 levels")
        let value = String(repeating: "{a: ", count: 200) + "1" + String(repeating: "}", count: 200)
        assertRefused(try runDeepDEM(["train", "--data", folder.path, "--unet", value]), "--unet: line 1: nested deeper than 64 levels")
    }

    func testAliasesAreBounded() throws {
        // Each anchor lists the previous one 9 times: 9^6 (half a million) values from 7 lines.
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        for i in 1...5 { lines.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]") }
        let laughs = try file("laughs.yaml", lines.joined(separator: "\n") + "\ndata: *a5\n")
        assertRefused(try runDeepDEM(["train", "--config", laughs]), "\(laughs): line 6: more than 100000 values once aliases are expanded")

        // An alias of a 40-level structure inside another 40 levels is 80 levels once expanded.
        let nested = { (inner: String) in String(repeating: "[", count: 40) + inner + String(repeating: "]", count: 40) }
        let deep = try file("alias-depth.yaml", "a: &deep \(nested("1"))\ndata: \(nested("*deep"))\n")
        assertRefused(try runDeepDEM(["train", "--config", deep]), "\(deep): line 2: alias *deep nests deeper than 64 levels")

        // Anchors and aliases within the bounds are YAML like any other: this file gets as far as its data.
        let fine = try file("fine.yaml", "data: \(folder.path)/nowhere\nchip_size: &c 32\nbatch_size: *c\n")
        let output = try runDeepDEM(["train", "--config", fine])
        XCTAssertEqual(output.status, 1, output.stderr)
        XCTAssertTrue(output.stderr.contains("no such scene folder"), output.stderr)
    }

    func testDuplicateKeysAreRefused() throws {
        let top = try file("top.yaml", "data: x\nbatch_size: 4\nbatch_size: 8\n")
        assertRefused(try runDeepDEM(["train", "--config", top]), "\(top): line 3: key 'batch_size' appears twice in one mapping")
        let nested = try file("nested.json", "{\"data\": \"x\", \"unet\": {\"depth\": 3, \"depth\": 4}}")
        assertRefused(try runDeepDEM(["train", "--config", nested]), "\(nested): line 1: key 'depth' appears twice in one mapping")
        let prepare = try file("prepare.yaml", "dsm: a.tif\nout: b\ndsm: c.tif\n")
        assertRefused(try runDeepDEM(["prepare", "--config", prepare]), "\(prepare): line 3: key 'dsm' appears twice in one mapping")
    }

    func testOversizedFilesAreRefused() throws {
        let big = try file("big.yaml", "data: x\n#" + String(repeating: " ", count: 5 << 20) + "\n")
        assertRefused(try runDeepDEM(["train", "--config", big]), "\(big): 5242890 bytes; a configuration file may have at most 4194304")
    }

    /// Numbers a config can hold but a setting cannot: YAML's .inf and .nan used to end in
    /// JSONSerialization's multi-line NSError, and fill_holes: 1e300 trapped converting to Int.
    func testNumbersOutOfEveryRange() throws {
        let inf = try file("inf.yaml", "data: x\nlr: .inf\n")
        assertRefused(try runDeepDEM(["train", "--config", inf]), "config: 'lr' is inf; it must be a finite number")
        assertRefused(try runDeepDEM(["train", "--data", "x", "--unet", "{depth: .nan}"]), "config: 'unet.depth' is nan; it must be a finite number")
        let holes = try file("holes.yaml", "dsm: a.tif\nout: b\nfill_holes: 1e300\n")
        assertRefused(try runDeepDEM(["prepare", "--config", holes]),
                      "--fill-holes must be a whole number of pixels between 0 and 1000000 (got 1e+300)")
    }
}
