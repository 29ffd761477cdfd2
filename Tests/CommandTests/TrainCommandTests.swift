import Foundation
import XCTest

/// `deepdem train --print-config`: the configuration with every default resolved, as a run
/// folder's config.json holds it, and a file that trains the same run when given back.
final class TrainCommandTests: XCTestCase {
    func printConfig(_ arguments: [String]) throws -> [String: Any] {
        let output = try runDeepDEM(["train", "--print-config"] + arguments)
        XCTAssertEqual(output.status, 0, output.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any], output.stdout)
    }

    /// A `unet:` mapping that gives some keys takes the training defaults for the others (not
    /// ResDepth's, which only a checkpoint's metadata falls back to), and its input channels
    /// follow the bands.
    func testDefaultsAndInputChannels() throws {
        let config = try printConfig(["--data", "scenes/a", "--bands", "[asp_dsm, ndvi, nodata_mask]", "--unet", "{depth: 3}"])
        let unet = try XCTUnwrap(config["unet"] as? [String: Any])
        XCTAssertEqual(unet["depth"] as? Int, 3)
        XCTAssertEqual(unet["n_input_channels"] as? Int, 3)
        XCTAssertEqual(unet["start_kernel"] as? Int, 64)
        XCTAssertEqual(unet["do_BN"] as? Bool, false)
        XCTAssertEqual(unet["bias_conv_layer"] as? Bool, true)
        XCTAssertEqual(unet["outer_skip"] as? Bool, false)
        XCTAssertEqual(unet["up_mode"] as? String, "transpose")
        XCTAssertEqual(config["decoder_channels"] as? [Int], [256, 128, 64, 32, 16])
        XCTAssertEqual(config["out"] as? String, "runs/deepdem")
    }

    /// What --print-config prints, given back as the configuration file, prints the same.
    func testPrintedConfigurationReadsBackTheSame() throws {
        try printedConfigReadsBack(["--data", "scenes/a", "--lr", "1e-3", "--arch", "resnet18-unet"])
    }

    func testPrecision() throws {
        XCTAssertEqual(try printConfig(["--data", "scenes/a"])["precision"] as? String, "fp32")
        XCTAssertEqual(try printConfig(["--data", "scenes/a", "--precision", "bf16-mixed"])["precision"] as? String, "bf16-mixed")
        assertRefused(try runDeepDEM(["train", "--print-config", "--data", "scenes/a", "--precision", "fp16"]),
                      "'precision' is 'fp16'; it must be one of fp32, bf16-mixed")
    }

    func testInitEncoderIsPrintedAndNeedsAResNet() throws {
        let config = try printConfig(["--data", "scenes/a", "--arch", "resnet34-unet", "--init-encoder", "imagenet/r34.safetensors"])
        XCTAssertEqual(config["init_encoder"] as? String, "imagenet/r34.safetensors")
        XCTAssertNil(try printConfig(["--data", "scenes/a"])["init_encoder"], "unset unless given")
        assertRefused(try runDeepDEM(["train", "--print-config", "--data", "scenes/a", "--init-encoder", "r18.safetensors"]),
                      "'init_encoder' loads a pretrained ResNet encoder; arch 'unet' has none (resnet18-unet and resnet34-unet do)")
    }

    func testInputChannelsThatDisagreeWithTheBands() throws {
        assertRefused(try runDeepDEM(["train", "--print-config", "--data", "scenes/a", "--unet", "{n_input_channels: 5}"]),
                      "'unet.n_input_channels' is 5, but 'bands' lists 6")
    }
}
