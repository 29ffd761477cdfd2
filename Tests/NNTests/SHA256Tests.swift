import Foundation
import NN
import Primitives
import XCTest

/// SHA-256 against FIPS 180-4's examples and against coreutils' sha256sum on files whose sizes
/// straddle the 64-byte blocks and the 4 MB pieces files are read in.
final class SHA256Tests: XCTestCase {
    func testStandardVectors() {
        XCTAssertEqual(SHA256.hex(of: [UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(of: Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var hash = SHA256()
        for _ in 0..<1000 { hash.update([UInt8](repeating: 0x61, count: 1000)) }
        XCTAssertEqual(hash.finish(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testFilesAgreeWithSha256sum() throws {
        let sha256sum = "/usr/bin/sha256sum"
        guard FileManager.default.isExecutableFile(atPath: sha256sum) else { throw XCTSkip("no sha256sum") }
        var rng = SplitMix64(seed: 11)
        for size in [55, 56, 63, 64, 65, 119, 4_194_304 + 3] {
            let path = NSTemporaryDirectory() + "sha256-\(getpid())-\(size)"
            defer { try? FileManager.default.removeItem(atPath: path) }
            try Data((0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }).write(to: URL(fileURLWithPath: path))
            let process = Process()
            process.executableURL = URL(fileURLWithPath: sha256sum)
            process.arguments = [path]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let expected = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64)
            process.waitUntilExit()
            XCTAssertEqual(try SHA256.hex(ofFile: path), String(expected), "\(size) bytes")
        }
    }
}
