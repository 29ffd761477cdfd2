import Foundation
import SwiftProtobuf
import TensorBoard
import XCTest

final class EventFileTests: XCTestCase {
    /// The records of a TFRecord file, each checked against its two CRCs.
    func records(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Data] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func le<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            (0..<T.bitWidth / 8).reduce(T(0)) { $0 | T(bytes[at + $1]) << ($1 * 8) }
        }
        var out: [Data] = [], at = 0
        while at < bytes.count {
            let n = Int(le(at, UInt64.self))
            XCTAssertEqual(le(at + 8, UInt32.self), CRC32C.masked(CRC32C.checksum(bytes[at..<at + 8])), "length CRC", file: file, line: line)
            let payload = bytes[at + 12..<at + 12 + n]
            XCTAssertEqual(le(at + 12 + n, UInt32.self), CRC32C.masked(CRC32C.checksum(payload)), "data CRC", file: file, line: line)
            out.append(Data(payload))
            at += 16 + n
        }
        XCTAssertEqual(at, bytes.count, "the file ends with a whole record", file: file, line: line)
        return out
    }

    /// A new file holds the version and start records and the given events; appends add whole records after
    /// them; every Event parses back through the generated code with its step, time and values.
    func testEventsRoundTrip() throws {
        let folder = NSTemporaryDirectory() + "deepdem-tests/events-\(UUID().uuidString.prefix(8))/tensorboard"
        defer { try? FileManager.default.removeItem(atPath: (folder as NSString).deletingLastPathComponent) }
        let first = ScalarEvent(step: 0, wallTime: 1_700_000_000.25, scalars: [.init("lr", 1e-3), .init("train_loss", 0)])
        let file = try EventFile.create(in: folder, events: [first], wallTime: 1_700_000_000.5)
        XCTAssertTrue((file.path as NSString).lastPathComponent.hasPrefix("events.out.tfevents.1700000000."), file.path)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), [(file.path as NSString).lastPathComponent],
                       "only the finished file is left")
        let later = ScalarEvent(step: 12, wallTime: 1_700_000_100, scalars: [.init("test/overall/refined/mae", 0.4321)])
        try file.append(later)

        let events = try records(file.path).map { try Tensorboard_Event(serializedBytes: $0) }
        XCTAssertEqual(events.count, 4)
        XCTAssertEqual(events[0].fileVersion, "brain.Event:2")
        XCTAssertEqual(events[0].wallTime, 1_700_000_000.5)
        XCTAssertEqual(events[1].sessionLog.status, .start)
        XCTAssertEqual(events[1].step, 0)
        for (event, expected) in zip(events.dropFirst(2), [first, later]) {
            XCTAssertEqual(event.step, Int64(expected.step))
            XCTAssertEqual(event.wallTime, expected.wallTime)
            guard case .summary(let summary)? = event.what else { return XCTFail("no summary in \(event)") }
            XCTAssertEqual(summary.value.map(\.tag), expected.scalars.map(\.tag))
            XCTAssertEqual(summary.value.map(\.simpleValue), expected.scalars.map(\.value))
            // A zero is written, not left to proto3's default: the reader must see the field.
            XCTAssertTrue(summary.value.allSatisfy { $0.value != nil })
        }
    }

    func testAppendToAMissingFileNamesIt() throws {
        let path = NSTemporaryDirectory() + "deepdem-tests/no-such-folder-\(UUID().uuidString.prefix(8))/events.out.tfevents.1.x"
        XCTAssertThrowsError(try EventFile(path: path).append(ScalarEvent(step: 1, wallTime: 0, scalars: []))) { error in
            XCTAssertTrue("\(error)".hasPrefix(path + ": cannot append:"), "\(error)")
        }
    }
}
