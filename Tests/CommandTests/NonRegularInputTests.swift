import Foundation
import XCTest

/// Inputs that are not regular files (a FIFO, a device, a folder) are refused at once with one
/// line. `deepdem info` on a FIFO used to wait forever for a writer; `timeout` turns such a hang
/// into a failure here instead of a stuck test run.
final class NonRegularInputTests: XCTestCase {
    var folder: URL!
    var fifo: String!

    override func setUpWithError() throws {
        folder = try makeCommandFolder()
        fifo = folder.appendingPathComponent("pipe").path
        guard mkfifo(fifo, 0o600) == 0 else { throw XCTSkip("cannot make a FIFO here") }
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func refused(_ arguments: [String]) throws -> DeepDEMOutput {
        try runDeepDEM(arguments, launcher: ["/usr/bin/timeout", "20"])
    }

    func testCheckpointsAndConfigurations() throws {
        let out = folder.appendingPathComponent("refined.tif").path
        assertRefused(try refused(["info", fifo]), "\(fifo!): is a FIFO, not a regular file")
        assertRefused(try refused(["info", "/dev/zero"]), "/dev/zero: is a device, not a regular file")
        assertRefused(try refused(["refine", "--checkpoint", fifo, "--data", folder.path, "--out", out]),
                      "\(fifo!): is a FIFO, not a regular file")
        assertRefused(try refused(["train", "--config", fifo]), "\(fifo!): is a FIFO, not a regular file")
        assertRefused(try refused(["train", "--config", folder.path]), "\(folder.path): is a folder, not a regular file")
        assertRefused(try refused(["prepare", "--config", fifo]), "\(fifo!): is a FIFO, not a regular file")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testRasters() throws {
        assertRefused(try refused(["evaluate", "--prediction", fifo, "--truth", fifo]), "\(fifo!): is a FIFO, not a raster file")
        assertRefused(try refused(["evaluate", "--prediction", "/dev/zero", "--truth", "/dev/zero"]),
                      "/dev/zero: is a device, not a raster file")
        // A scene band that is a FIFO.
        let scene = folder.appendingPathComponent("scene").path
        try FileManager.default.createDirectory(atPath: scene, withIntermediateDirectories: true)
        let band = scene + "/final_asp_dsm.tif"
        XCTAssertEqual(mkfifo(band, 0o600), 0)
        assertRefused(try refused(["stats", "--data", scene]), "\(band): is a FIFO, not a raster file")
    }
}
