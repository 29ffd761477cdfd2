import Foundation
import NN
import Primitives
import XCTest

/// ResDepth's options as training settings: `unet: {up_mode: bilinear}` and
/// `ortho_standardization` train, land in the checkpoint's metadata, refine, and a resume may not
/// change the standardization the weights were trained with.
final class ResDepthOptionsTests: XCTestCase {
    func testBilinearModelWithTileStandardizationTrainsRefinesAndKeepsItsSetting() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("resdepth-options") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, [
            "unet": ["depth": 3, "start_kernel": 8, "max_filter_depth": 32, "up_mode": "bilinear"],
            "ortho_standardization": "tile", "max_steps": 2,
        ])
        let r = try TrainingRun.run(["train", "--config", config])
        XCTAssertEqual(r.status, 0, "train failed:\n\(r.stdout)\n\(r.stderr)")
        let checkpoint = out + "/last.safetensors"
        let saved = try Checkpoint.readConfig(checkpoint)
        XCTAssertEqual(saved.unet?.upMode, "bilinear")
        XCTAssertEqual(saved.orthoStandardization, .tile)
        let weights = try TrainingRun.weights(checkpoint)
        XCTAssertNotNil(weights["decoder.0.0.1.weight"], "ResDepth's name of the bilinear up-conv's conv1×1")
        XCTAssertNotNil(weights["decoder.2.1.bias"])
        XCTAssertNil(weights["decoder.0.0.weight"], "no transposed convolution")

        let refined = out + "/refined.tif"
        let refine = try TrainingRun.run(["refine", "--checkpoint", checkpoint, "--data", scene, "--out", refined])
        XCTAssertEqual(refine.status, 0, refine.stderr)

        let resumed = try TrainingRun.run(["train", "--config", config, "--resume", "--ortho-standardization", "none",
                                           "--max-steps", "3"])
        XCTAssertEqual(resumed.status, 1)
        XCTAssertTrue(resumed.stderr.hasPrefix("deepdem: error: ") && resumed.stderr.contains("settings for: ortho_standardization"),
                      resumed.stderr)
        let bad = try TrainingRun.run(["train", "--config", config, "--ortho-standardization", "{mean: 1, std: -2}",
                                       "--out", out + "-bad"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertEqual(bad.stderr, "deepdem: error: config: 'ortho_standardization': has std -2.0; it must be positive and finite\n")
    }
}
