import TensorBoard
import XCTest

final class CRC32CTests: XCTestCase {
    /// The standard check value and RFC 3720's test vectors (32 bytes of zeros, of ones).
    func testKnownValues() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
    }

    /// TFRecord's framing of the payload "abc", byte for byte (the CRCs as TensorBoard's own
    /// `masked_crc32c` gives them: 0x0E4999B0 for the length, 0x21F1576E for the data).
    func testRecordFraming() {
        let record = TFRecord.frame(Data("abc".utf8))
        XCTAssertEqual([UInt8](record), [0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xB0, 0x99, 0x49, 0x0E,
                                         0x61, 0x62, 0x63, 0x6E, 0x57, 0xF1, 0x21])
        XCTAssertEqual(TFRecord.frame(Data()).count, 16, "an empty payload still has its length and both CRCs")
    }
}
