import Foundation
import NN
import XCTest

final class SafeTensorsTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "safetensors-tests-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A file with the given JSON header (padded) and `dataBytes` bytes of data.
    func craft(_ name: String, header: String, dataBytes: Int) -> String {
        var json = Array(header.utf8)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
        bytes += json
        bytes += [UInt8](repeating: 7, count: dataBytes)
        let path = dir + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func assertError(_ path: String, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        for read in [{ _ = try SafeTensors(contentsOf: path) }, { _ = try SafeTensors.header(of: path) }] {
            XCTAssertThrowsError(try read(), file: file, line: line) { error in
                let text = String(describing: error)
                XCTAssertTrue(text.hasPrefix(path + ": "), "\(text)", file: file, line: line)
                XCTAssertFalse(text.contains("\n"), file: file, line: line)
                for p in parts { XCTAssertTrue(text.contains(p), "'\(text)' lacks '\(p)'", file: file, line: line) }
            }
        }
    }

    func testRoundTrip() throws {
        let t = Tensor([2, 3, 1, 2], (0..<12).map { Float($0) * 0.25 - 1 })
        var w = SafeTensorsWriter(metadata: ["deepdem": "{\"arch\": \"unet\"}", "note": "a/b"])
        w.add("layer.weight", t)
        w.add("scalar", shape: [], floats: [3.5])
        w.add("empty", shape: [0, 4], floats: [])
        w.add("bn.num_batches_tracked", shape: [], int64s: [Int64.max - 1])
        w.add("negatives", shape: [2], int64s: [-1, -3])
        let path = dir + "/a.safetensors"
        try w.write(to: path)

        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.1) << (8 * $1.0) }
        XCTAssertEqual(headerLength % 8, 0)
        XCTAssertEqual(bytes.count, 8 + headerLength + 12 * 4 + 4 + 8 + 16)

        let f = try SafeTensors(contentsOf: path)
        XCTAssertEqual(f.metadata, ["deepdem": "{\"arch\": \"unet\"}", "note": "a/b"])
        XCTAssertEqual(try f.floats("layer.weight"), t.array)
        XCTAssertEqual(try f.tensor("layer.weight").shape, [2, 3, 1, 2])
        XCTAssertEqual(try f.floats("scalar"), [3.5])
        XCTAssertEqual(f.info("scalar")?.shape, [])
        XCTAssertEqual(try f.floats("empty"), [])
        XCTAssertEqual(try f.int64s("bn.num_batches_tracked"), [Int64.max - 1])
        XCTAssertEqual(try f.int64s("negatives"), [-1, -3])
        // Data order is the order of `add`.
        XCTAssertEqual(f.tensors.map(\.name), ["layer.weight", "scalar", "empty", "bn.num_batches_tracked", "negatives"])
        XCTAssertEqual(try SafeTensors.header(of: path).tensors, f.tensors)

        XCTAssertThrowsError(try f.floats("bn.num_batches_tracked")) {
            XCTAssertEqual("\($0)", "\(path): tensor 'bn.num_batches_tracked' has dtype I64, expected F32")
        }
        XCTAssertThrowsError(try f.floats("nope")) { XCTAssertEqual("\($0)", "\(path): no tensor 'nope'") }
    }

    func testWriteReplacesAtomicallyAndLeavesNoTemporaryFile() throws {
        let path = dir + "/w.safetensors"
        var w = SafeTensorsWriter()
        w.add("x", shape: [1], floats: [1])
        try w.write(to: path)
        w = SafeTensorsWriter()
        w.add("y", shape: [2], floats: [2, 3])
        try w.write(to: path)
        XCTAssertEqual(try SafeTensors(contentsOf: path).tensors.map(\.name), ["y"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["w.safetensors"])

        XCTAssertThrowsError(try w.write(to: dir + "/missing/w.safetensors")) {
            XCTAssertTrue("\($0)".hasPrefix(self.dir + "/missing/w.safetensors: cannot write:"), "\($0)")
        }
        var dup = SafeTensorsWriter()
        dup.add("x", shape: [1], floats: [1])
        dup.add("x", shape: [1], floats: [2])
        XCTAssertThrowsError(try dup.write(to: path)) { XCTAssertTrue("\($0)".contains("duplicate"), "\($0)") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["w.safetensors"])
    }

    func testMissingFile() {
        assertError(dir + "/none.safetensors", contains: ["cannot read", "No such file"])
    }

    func testTruncatedFiles() throws {
        var w = SafeTensorsWriter()
        w.add("a", shape: [4], floats: [1, 2, 3, 4])
        w.add("b", shape: [8], floats: [Float](repeating: 1, count: 8))
        let good = dir + "/good.safetensors"
        try w.write(to: good)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))

        let short = dir + "/short.safetensors"
        _ = FileManager.default.createFile(atPath: short, contents: bytes.prefix(5))
        assertError(short, contains: ["truncated", "5 bytes"])

        let inHeader = dir + "/in-header.safetensors"
        _ = FileManager.default.createFile(atPath: inHeader, contents: bytes.prefix(20))
        assertError(inHeader, contains: ["truncated", "header length"])

        let inData = dir + "/in-data.safetensors"
        _ = FileManager.default.createFile(atPath: inData, contents: bytes.prefix(bytes.count - 10))
        assertError(inData, contains: ["truncated", "tensor 'b'"])

        let empty = dir + "/empty.safetensors"
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        assertError(empty, contains: ["truncated", "0 bytes"])
    }

    func testHeaderLengthBeyondFile() {
        let path = dir + "/long.safetensors"
        var bytes = withUnsafeBytes(of: UInt64(1000).littleEndian) { Array($0) }
        bytes += Array("{}      ".utf8)
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        assertError(path, contains: ["header length 1000 exceeds the file's 16 bytes"])

        let huge = dir + "/huge.safetensors"
        _ = FileManager.default.createFile(atPath: huge, contents: Data([UInt8](repeating: 0xff, count: 64)))
        assertError(huge, contains: ["implausible"])
    }

    func testCorruptHeaders() {
        assertError(craft("json.safetensors", header: #"{"a": {"dtype": "F32", "shape": [1], "#, dataBytes: 4),
                    contains: ["corrupt header", "invalid JSON"])
        assertError(craft("array.safetensors", header: "[1, 2]", dataBytes: 0), contains: ["corrupt header"])
        assertError(craft("meta.safetensors", header: #"{"__metadata__": {"k": 1}}"#, dataBytes: 0),
                    contains: ["__metadata__"])
        assertError(craft("entry.safetensors", header: #"{"w": {"dtype": "F32", "shape": [1]}}"#, dataBytes: 4),
                    contains: ["tensor 'w'", "malformed"])
        assertError(craft("neg.safetensors", header: #"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#, dataBytes: 4),
                    contains: ["tensor 'w'", "invalid shape"])
        assertError(craft("frac.safetensors", header: #"{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}"#, dataBytes: 4),
                    contains: ["tensor 'w'", "malformed"])
    }

    /// Two equal keys in one object would mean one thing to one reader and another to the next
    /// (JSONDecoder keeps one, Python the last); the reference reader refuses them, and so does this.
    func testDuplicateKeys() {
        let w = #"{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}"#
        assertError(craft("tensor.safetensors", header: #"{"w": \#(w), "w": \#(w)}"#, dataBytes: 4),
                    contains: ["corrupt header: tensor 'w' appears twice"])
        assertError(craft("escaped.safetensors", header: #"{"w": \#(w), "\u0077": \#(w)}"#, dataBytes: 4),
                    contains: ["corrupt header: tensor 'w' appears twice"])
        assertError(craft("meta.safetensors", header: #"{"__metadata__": {"deepdem": "{}", "deepdem": "{}"}}"#, dataBytes: 0),
                    contains: ["corrupt header: metadata key 'deepdem' appears twice"])
        assertError(craft("metas.safetensors", header: #"{"__metadata__": {}, "__metadata__": {}}"#, dataBytes: 0),
                    contains: ["corrupt header: '__metadata__' appears twice"])
        assertError(craft("field.safetensors", header: #"{"w": {"dtype": "F32", "dtype": "I64", "shape": [1], "data_offsets": [0, 4]}}"#, dataBytes: 4),
                    contains: ["corrupt header: 'w.dtype' appears twice"])
        // Equal keys in different objects, or equal strings that are values, are fine.
        let fine = craft("fine.safetensors", header: #"{"__metadata__": {"w": "w"}, "w": \#(w)}"#, dataBytes: 4)
        XCTAssertEqual(try SafeTensors(contentsOf: fine).tensors.map(\.name), ["w"])
    }

    func testControlCharactersInNames() {
        let w = #"{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}"#
        assertError(craft("escape.safetensors", header: #"{"a\u001b[2Jb": \#(w)}"#, dataBytes: 4),
                    contains: [#"corrupt header: tensor name "a\u{1B}[2Jb" holds a control character"#])
        assertError(craft("newline.safetensors", header: #"{"a\nb": \#(w)}"#, dataBytes: 4),
                    contains: [#"tensor name "a\nb" holds a control character"#])
    }

    func testUnsupportedDType() {
        let path = craft("bf16.safetensors", header: #"{"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}"#, dataBytes: 4)
        assertError(path, contains: ["tensor 'w'", "dtype BF16", "only F32 and I64"])
    }

    func testOffsets() {
        assertError(craft("range.safetensors", header: #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#, dataBytes: 4),
                    contains: ["truncated", "tensor 'w'", "ends at byte 8 of a 4-byte data section"])
        assertError(craft("size.safetensors", header: #"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, dataBytes: 8),
                    contains: ["tensor 'w'", "hold 8 bytes", "[3] of F32 needs 12"])
        assertError(craft("i64.safetensors", header: #"{"n": {"dtype": "I64", "shape": [], "data_offsets": [0, 4]}}"#, dataBytes: 4),
                    contains: ["tensor 'n'", "of I64 needs 8"])
        assertError(craft("backwards.safetensors", header: #"{"w": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}}"#, dataBytes: 4),
                    contains: ["tensor 'w'", "not a byte range"])
        assertError(craft("overlap.safetensors", header: #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#, dataBytes: 12),
                    contains: ["tensor 'b' overlaps tensor 'a'"])
        assertError(craft("gap.safetensors", header: #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}"#, dataBytes: 12),
                    contains: ["gap of 4 bytes before tensor 'b'"])
        assertError(craft("tail.safetensors", header: #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, dataBytes: 12),
                    contains: ["8 bytes after the last tensor"])
    }
}
