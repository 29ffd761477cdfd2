import Foundation
import NN
import Primitives
import XCTest

/// `ModelConfig.validate`: the one check between a configuration (a checkpoint's metadata, a
/// training config) and the allocation of a network.
final class ModelConfigTests: XCTestCase {
    static let bands = ["asp_dsm", "ortho_channel1", "ortho_channel2"]
    let unet = ModelConfig(arch: "unet", bands: bands, chipSize: 64, gsf: 2,
                           unet: UNetConfig(nInputChannels: 3, depth: 3, startKernel: 8, maxFilterDepth: 32))
    let resnet = ModelConfig(arch: "resnet18-unet", bands: bands, chipSize: 64, gsf: 2,
                             encoder: EncoderConfig(name: "resnet18", inChannels: 3))

    func assertRefused(_ config: ModelConfig, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try config.validate(), file: file, line: line) {
            XCTAssertEqual("\($0)", expected, file: file, line: line)
        }
        // makeNetwork refuses it the same way, before any layer exists.
        XCTAssertThrowsError(try makeNetwork(config, seed: nil), file: file, line: line) {
            XCTAssertEqual("\($0)", expected, file: file, line: line)
        }
    }

    /// A checkpoint's metadata that leaves optional keys out means the reference's defaults:
    /// ResDepth's `UNet` constructor, smp's `Unet`. Training's own defaults never leak in.
    func testMissingKeysTakeTheReferenceDefaults() throws {
        let json = #"{"arch": "unet", "bands": ["asp_dsm"], "target": "lidar_data", "chip_size": 256, "gsf": 1, "unet": {"n_input_channels": 1}}"#
        let config = try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8))
        XCTAssertEqual(config.unet, UNetConfig(nInputChannels: 1, depth: 8, startKernel: 64, maxFilterDepth: 512, doBN: true,
                                               biasConvLayer: false, outerSkip: true, outerSkipBN: false, upMode: "transpose"))
        let resnet = #"{"arch": "resnet18-unet", "bands": ["asp_dsm"], "target": "lidar_data", "chip_size": 64, "gsf": 1, "encoder": {"name": "resnet18"}}"#
        let encoder = try XCTUnwrap(try JSONDecoder().decode(ModelConfig.self, from: Data(resnet.utf8)).encoder)
        XCTAssertEqual(encoder, EncoderConfig(name: "resnet18", inChannels: 3, decoderChannels: [256, 128, 64, 32, 16]))
        XCTAssertThrowsError(try JSONDecoder().decode(ModelConfig.self, from: Data(json.replacingOccurrences(of: #""n_input_channels": 1"#, with: "").utf8)))
    }

    func testBuildableConfigurationsPass() throws {
        XCTAssertNoThrow(try unet.validate())
        XCTAssertNoThrow(try resnet.validate())
        var deepest = unet
        deepest.chipSize = 4096
        deepest.unet!.depth = 12
        deepest.unet!.startKernel = 64
        deepest.unet!.maxFilterDepth = 128
        XCTAssertNoThrow(try deepest.validate())
    }

    func testUNetLimitsNameTheKeyAndTheRange() {
        func with(_ change: (inout ModelConfig) -> Void) -> ModelConfig {
            var c = unet
            change(&c)
            return c
        }
        assertRefused(with { $0.unet!.startKernel = 100_000_000; $0.unet!.maxFilterDepth = 100_000_000 },
                      "'unet.start_kernel' is 100000000; it must be between 1 and 1024")
        assertRefused(with { $0.unet!.maxFilterDepth = -5 }, "'unet.max_filter_depth' is -5; it must be between 1 and 1024")
        assertRefused(with { $0.unet!.maxFilterDepth = 4 }, "'unet.max_filter_depth' is 4; it must be at least start_kernel (8)")
        assertRefused(with { $0.unet!.startKernel = 0 }, "'unet.start_kernel' is 0; it must be between 1 and 1024")
        assertRefused(with { $0.unet!.depth = 70 }, "'unet.depth' is 70; it must be between 1 and 12")
        assertRefused(with { $0.unet!.depth = 0 }, "'unet.depth' is 0; it must be between 1 and 12")
        assertRefused(with { $0.unet!.upMode = "nearest" }, "'unet.up_mode' is 'nearest'; it must be one of transpose, bilinear")
        XCTAssertNoThrow(try with { $0.unet!.upMode = "bilinear" }.validate())
        assertRefused(with { $0.chipSize = 4 }, "'chip_size' is 4; it must be between 8 and 4096")
        assertRefused(with { $0.chipSize = 33 }, "'chip_size' is 33; a 'unet' model needs a multiple of 8 (2^unet.depth)")
        assertRefused(with { $0.chipSize = 1 << 40 }, "'chip_size' is 1099511627776; it must be between 8 and 4096")
        assertRefused(with { $0.unet!.nInputChannels = 5 }, "'unet.n_input_channels' is 5, but 'bands' lists 3")
        assertRefused(with { $0.bands = []; $0.unet!.nInputChannels = 0 }, "'bands' lists 0 bands; it must list between 1 and 64")
        assertRefused(with { $0.unet = nil }, "'unet' is missing; a 'unet' model needs it")
        assertRefused(with { $0.arch = "vit" }, "'arch' is 'vit'; it must be one of unet, resnet18-unet, resnet34-unet, resnet50-unet")
        assertRefused(with { $0.chipSize = 4096; $0.unet!.maxFilterDepth = 1024 },
                      "'chip_size' is 4096; with layers 1024 channels wide a chip would need more than 2147483648 values per layer")
    }

    func testResNetLimits() {
        func with(_ change: (inout ModelConfig) -> Void) -> ModelConfig {
            var c = resnet
            change(&c)
            return c
        }
        assertRefused(with { $0.encoder!.decoderChannels = [256, 128, 64, 32, -16] },
                      "'encoder.decoder_channels.4' is -16; it must be between 1 and 1024")
        assertRefused(with { $0.encoder!.decoderChannels = [256, 128] }, "'encoder.decoder_channels' has 2 entries; it needs 5")
        assertRefused(with { $0.encoder!.inChannels = 4 }, "'encoder.in_channels' is 4, but 'bands' lists 3")
        assertRefused(with { $0.encoder!.name = "resnet34" }, "'encoder.name' is 'resnet34'; a 'resnet18-unet' model needs 'resnet18'")
        assertRefused(with { $0.encoder = nil }, "'encoder' is missing; a 'resnet18-unet' model needs it")
        assertRefused(with { $0.chipSize = 48 }, "'chip_size' is 48; a 'resnet18-unet' model needs a multiple of 32")
        // The widest layer is the encoder's last stage: 512 channels for resnet18, 2048 for resnet50,
        // so the chip that fills the activation limit is 2048 for the one and 1024 for the other.
        XCTAssertNoThrow(try with { $0.chipSize = 2048 }.validate())
        let resnet50 = with { $0.arch = "resnet50-unet"; $0.encoder!.name = "resnet50" }
        XCTAssertNoThrow(try resnet50.validate())
        XCTAssertNoThrow(try with { $0.arch = "resnet50-unet"; $0.encoder!.name = "resnet50"; $0.chipSize = 1024 }.validate())
        assertRefused(with { $0.arch = "resnet50-unet"; $0.encoder!.name = "resnet50"; $0.chipSize = 1056 },
                      "'chip_size' is 1056; with layers 2048 channels wide a chip would need more than 2147483648 values per layer")
    }

    func testGSFMustBeAUsableFloat() {
        for bad in [0, -1, 1e308, .infinity, .nan, 1e-9] {
            var c = unet
            c.gsf = bad
            assertRefused(c, "'gsf' is \(bad); it must be between 1e-06 and 1e+06")
        }
    }
}

/// `ortho_standardization` in a checkpoint's metadata: absent is none, and none is written as absent,
/// so checkpoints without it keep their metadata byte for byte.
final class OrthoStandardizationConfigTests: XCTestCase {
    static let base = #""arch": "unet", "bands": ["asp_dsm", "ortho_channel1"], "target": "lidar_data", "chip_size": 64, "gsf": 2, "unet": {"n_input_channels": 2, "depth": 3}"#

    func decode(_ extra: String) throws -> ModelConfig {
        try JSONDecoder().decode(ModelConfig.self, from: Data("{\(Self.base)\(extra)}".utf8))
    }

    func testSpellingsAndRoundTrip() throws {
        XCTAssertEqual(try decode("").orthoStandardization, .none)
        XCTAssertEqual(try decode(#", "ortho_standardization": "none""#).orthoStandardization, .none)
        XCTAssertEqual(try decode(#", "ortho_standardization": "tile""#).orthoStandardization, .tile)
        XCTAssertEqual(try decode(#", "ortho_standardization": {"mean": 71.5, "std": 20.25}"#).orthoStandardization,
                       .fixed(mean: 71.5, std: 20.25))
        XCTAssertEqual(try decode(#", "ortho_standardization": {"mean": null, "std": 3}"#).orthoStandardization,
                       .fixed(mean: nil, std: 3))
        XCTAssertEqual(try decode(#", "ortho_standardization": {"std": 3}"#).orthoStandardization, .fixed(mean: nil, std: 3))
        for mode in [OrthoStandardization.none, .tile, .fixed(mean: 71.5, std: 20.25), .fixed(mean: nil, std: 3)] {
            var config = try decode("")
            config.orthoStandardization = mode
            let json = try Checkpoint.configJSON(config)
            XCTAssertEqual(json.contains("ortho_standardization"), mode != .none, json)
            XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8)), config)
        }
        var fixed = try decode("")
        fixed.orthoStandardization = .fixed(mean: nil, std: 3)
        XCTAssertTrue(try Checkpoint.configJSON(fixed).contains(#""mean":null"#), "null, as ResDepth's file says None")
    }

    func testOnlyAModelWithOrthosStandardizesThem() throws {
        var dsmOnly = ModelConfig(arch: "unet", bands: ["asp_dsm"], chipSize: 64, gsf: 2, unet: UNetConfig(nInputChannels: 1, depth: 3))
        XCTAssertNoThrow(try dsmOnly.validate())
        dsmOnly.orthoStandardization = .tile
        XCTAssertThrowsError(try dsmOnly.validate()) {
            XCTAssertEqual("\($0)", "'ortho_standardization' is tile, but no band is an ortho_* band")
        }
        var withOrthos = try decode("")
        withOrthos.orthoStandardization = .fixed(mean: nil, std: 2)
        XCTAssertNoThrow(try withOrthos.validate())
    }

    func testBadValuesAreRefused() {
        for (value, problem) in [(#""whiten""#, "is 'whiten'; it must be none, tile or {mean: M, std: S}"),
                                 (#"{"mean": 1, "std": 0}"#, "has std 0.0; it must be positive and finite"),
                                 (#"{"mean": 1}"#, "needs 'std' beside 'mean'"),
                                 (#"{"mean": 1, "std": 2, "scale": 3}"#, "unknown key 'scale' (known: mean, std)"),
                                 ("7", "must be none, tile or {mean: M, std: S}")] {
            XCTAssertThrowsError(try decode(#", "ortho_standardization": "# + value), value) {
                guard case DecodingError.dataCorrupted(let context) = $0 else { return XCTFail("\(value): \($0)") }
                XCTAssertEqual(context.debugDescription, problem)
                XCTAssertEqual(context.codingPath.map(\.stringValue), ["ortho_standardization"])
            }
        }
    }
}
