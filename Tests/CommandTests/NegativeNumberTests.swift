import Foundation
import NN
import XCTest

/// A negative number given to a numeric option is that option's value: it gets the option's
/// range error (or is used, where negative values make sense) instead of "Missing value".
final class NegativeNumberTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try makeCommandFolder() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func testRefineOptions() throws {
        let checkpoint = folder.appendingPathComponent("model.safetensors").path
        try writeBareCheckpoint(ModelConfig(arch: "unet", bands: ["asp_dsm"], chipSize: 64, gsf: 1,
                                            unet: UNetConfig(nInputChannels: 1, depth: 2, startKernel: 8)), to: checkpoint)
        let refine = ["refine", "--checkpoint", checkpoint, "--data", folder.path, "--out", folder.appendingPathComponent("r.tif").path]
        assertRefused(try runDeepDEM(refine + ["--stride", "-3"]), "--stride -3: must be between 1 and the chip size (64)")
        assertRefused(try runDeepDEM(refine + ["--stride", "65"]), "--stride 65: must be between 1 and the chip size (64)")
        assertRefused(try runDeepDEM(refine + ["--batch-size", "-1"]), "--batch-size -1: must be between 1 and 1024")
        assertRefused(try runDeepDEM(refine + ["--threads", "-2"]), "--threads -2: needs at least 1 thread")
    }

    func testOtherCommands() throws {
        let path = { (name: String) in self.folder.appendingPathComponent(name).path }
        assertRefused(try runDeepDEM(["synth", "--out", path("s"), "--size", "-5"]), "--size must be between 16 and 100000 (got -5)")
        assertRefused(try runDeepDEM(["stats", "--data", path("s"), "--chips", "-1"]), "--chips must be positive")
        assertRefused(try runDeepDEM(["figure", "--data", path("s"), "--panel-size", "-1"]), "--panel-size must be between 64 and 4096 (got -1)")
        assertRefused(try runDeepDEM(["prepare", "--dsm", path("d.tif"), "--out", path("p"), "--fill-holes", "-1"]),
                      "--fill-holes must be a whole number of pixels between 0 and 1000000 (got -1)")
        assertRefused(try runDeepDEM(["train", "--data", path("s"), "--max-steps", "-1"]), "'max_steps' must not be negative")
        // A negative threshold is a threshold (NDVI is negative over water): evaluate goes on to its files.
        assertRefused(try runDeepDEM(["evaluate", "--prediction", path("p.tif"), "--truth", path("t.tif"), "--threshold", "-0.5"]),
                      "\(path("p.tif")): no such file")
    }
}
