/// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, initial and final value all ones), the
/// checksum TFRecord framing uses; table-driven, one byte at a time.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int(UInt8(truncatingIfNeeded: c) ^ b)] ^ (c >> 8) }
        return ~c
    }

    /// TFRecord's masked form, so that a CRC over data that holds CRCs stays well distributed.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
