import Foundation

/// TFRecord framing, the container of TensorBoard's event files: the payload's length as a
/// little-endian UInt64, the masked CRC-32C of those 8 bytes, the payload, the masked CRC-32C of
/// the payload (both CRCs little-endian UInt32).
public enum TFRecord {
    public static func frame(_ payload: Data) -> Data {
        var record = Data(capacity: payload.count + 16)
        let length = littleEndianBytes(UInt64(payload.count))
        record.append(contentsOf: length)
        record.append(contentsOf: littleEndianBytes(CRC32C.masked(CRC32C.checksum(length))))
        record.append(payload)
        record.append(contentsOf: littleEndianBytes(CRC32C.masked(CRC32C.checksum(payload))))
        return record
    }

    static func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<T.bitWidth / 8).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
    }
}
