import Foundation
import NN
import XCTest

final class InfoCommandTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws { folder = try makeCommandFolder() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    func unetConfig(startKernel: Int = 4) -> ModelConfig {
        ModelConfig(arch: "unet", bands: ["asp_dsm", "ndvi", "nodata_mask"], chipSize: 32, gsf: 3.25,
                    unet: UNetConfig(nInputChannels: 3, depth: 2, startKernel: startKernel, maxFilterDepth: 16, doBN: true,
                                     outerSkip: true, outerSkipBN: true))
    }

    func save(_ config: ModelConfig, _ name: String, metadata: [String: String] = [:]) throws -> (String, any Network) {
        let net = try makeNetwork(config)
        let path = folder.appendingPathComponent(name).path
        try Checkpoint.save(net, to: path, extraMetadata: metadata)
        return (path, net)
    }

    /// A copy of a checkpoint's tensors under other metadata.
    func rewrite(_ source: String, _ name: String, metadata: [String: String]) throws -> String {
        let file = try SafeTensors(contentsOf: source)
        var w = SafeTensorsWriter(metadata: metadata)
        for t in file.tensors {
            if t.dtype == .i64 { w.add(t.name, shape: t.shape, int64s: try file.int64s(t.name)) } else { w.add(t.name, shape: t.shape, floats: try file.floats(t.name)) }
        }
        let path = folder.appendingPathComponent(name).path
        try w.write(to: path)
        return path
    }

    func testDescribesAUNetCheckpoint() throws {
        let (path, net) = try save(unetConfig(), "unet.safetensors", metadata: ["step": "1200", "note": String(repeating: "x", count: 300)])
        let output = try runDeepDEM(["info", path])
        XCTAssertEqual(output.status, 0, output.stderr)
        XCTAssertEqual(output.stderr, "")
        let lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let field = { (key: String) in lines.first { $0.hasPrefix(key + " ") }.map { $0.dropFirst(key.count).trimmingCharacters(in: .whitespaces) } }
        XCTAssertEqual(field("architecture"), "unet")
        XCTAssertEqual(field("bands"), "asp_dsm, ndvi, nodata_mask")
        XCTAssertEqual(field("target"), "lidar_data")
        XCTAssertEqual(field("chip size"), "32 px")
        XCTAssertEqual(field("gsf"), "3.25")
        XCTAssertEqual(field("unet"), "n_input_channels 3, depth 2, start_kernel 4, max_filter_depth 16, do_BN true, "
                       + "bias_conv_layer true, outer_skip true, outer_skip_BN true, up_mode transpose")
        let count = net.parameters.count
        XCTAssertGreaterThan(count, 1000)
        let grouped = count.formatted(.number.grouping(.automatic).locale(Locale(identifier: "en_US")))
        let buffers = net.state().count - net.parameters.parameters.count
        XCTAssertEqual(field("parameters"), "\(grouped) in \(net.parameters.parameters.count) tensors (and \(buffers) BatchNorm buffers)")
        XCTAssertEqual(field("step"), "1200")
        XCTAssertEqual(field("note")?.count, 100)

        // The table lists every tensor once, with dtype and shape.
        let header = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("tensor ") })
        let table = lines[(header + 1)...].filter { !$0.isEmpty }
        XCTAssertEqual(table.count, net.state().count)
        for (name, entry) in net.state() {
            let row = table.first { $0.hasPrefix(name + " ") }?.split(separator: " ", maxSplits: 2).map { $0.trimmingCharacters(in: .whitespaces) }
            let dtype = name.hasSuffix("num_batches_tracked") ? "I64" : "F32"
            XCTAssertEqual(row, [name, dtype, "[" + entry.shape.map(String.init).joined(separator: ", ") + "]"], name)
        }
    }

    func testDescribesAResNetCheckpoint() throws {
        let config = ModelConfig(arch: "resnet18-unet", bands: ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi"],
                                 chipSize: 64, gsf: 2, encoder: EncoderConfig(name: "resnet18", inChannels: 4))
        let (path, net) = try save(config, "resnet.safetensors")
        let output = try runDeepDEM(["info", path])
        XCTAssertEqual(output.status, 0, output.stderr)
        XCTAssertTrue(output.stdout.contains("\nencoder       resnet18, in_channels 4, decoder_channels [256, 128, 64, 32, 16]\n"), output.stdout)
        XCTAssertTrue(output.stdout.contains("\nencoder.conv1.weight "), output.stdout)
        // segmentation_models_pytorch's Unet("resnet18", in_channels=4, classes=1) has 14,331,345 parameters.
        XCTAssertEqual(net.parameters.count, 14_331_345)
        XCTAssertTrue(output.stdout.contains("\nparameters    14,331,345 in \(net.parameters.parameters.count) tensors"), output.stdout)
    }

    func testRefusesDamagedCheckpoints() throws {
        let (path, _) = try save(unetConfig(), "good.safetensors")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))

        let truncated = folder.appendingPathComponent("truncated.safetensors").path
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: truncated))
        assertRefused(try runDeepDEM(["info", truncated]), "\(truncated): truncated: tensor ")

        var broken = bytes
        broken[8] = UInt8(ascii: "[")
        broken[12] = UInt8(ascii: "}")
        let corrupt = folder.appendingPathComponent("corrupt.safetensors").path
        try broken.write(to: URL(fileURLWithPath: corrupt))
        assertRefused(try runDeepDEM(["info", corrupt]), "\(corrupt): corrupt header")

        let text = folder.appendingPathComponent("notes.txt").path
        try Data("not a checkpoint at all\n".utf8).write(to: URL(fileURLWithPath: text))
        assertRefused(try runDeepDEM(["info", text]), "\(text): header length")

        let missing = folder.appendingPathComponent("missing.safetensors").path
        assertRefused(try runDeepDEM(["info", missing]), "\(missing): cannot read: No such file or directory")
        assertRefused(try runDeepDEM(["info", folder.path]), "\(folder.path): is a folder, not a regular file")
    }

    func testRefusesCheckpointsThatDoNotMatchTheirConfiguration() throws {
        let (wide, _) = try save(unetConfig(startKernel: 8), "wide.safetensors")
        let wrongShape = try rewrite(wide, "wrong-shape.safetensors", metadata: ["deepdem": try Checkpoint.configJSON(unetConfig())])
        assertRefused(try runDeepDEM(["info", wrongShape]),
                      "\(wrongShape): tensor 'encoder.0.0.0.weight' has shape [8, 3, 3, 3], expected [4, 3, 3, 3]")

        let plain = try rewrite(wide, "plain.safetensors", metadata: [:])
        assertRefused(try runDeepDEM(["info", plain]), "\(plain): no 'deepdem' metadata")

        let json = try Checkpoint.configJSON(unetConfig()).replacingOccurrences(of: "\"unet\",", with: "\"vit\",")
        let unknown = try rewrite(wide, "unknown.safetensors", metadata: ["deepdem": json])
        assertRefused(try runDeepDEM(["info", unknown]), "\(unknown): 'deepdem' metadata: 'arch' is 'vit'")

        let mismatch = ModelConfig(arch: "resnet34-unet", bands: ["asp_dsm"], chipSize: 64, gsf: 1,
                                   encoder: EncoderConfig(name: "resnet18", inChannels: 1))
        let odd = try rewrite(wide, "odd.safetensors", metadata: ["deepdem": try Checkpoint.configJSON(mismatch)])
        assertRefused(try runDeepDEM(["info", odd]), "\(odd): 'deepdem' metadata: 'encoder.name' is 'resnet18'; a 'resnet34-unet' model needs 'resnet34'")
    }

    /// Metadata that crashed `info` (a 360 GB allocation, heap corruption, SIGILL, a 2^64-byte
    /// request) is refused in one line naming the file and the key, before any layer exists.
    func testRefusesMetadataNoNetworkCanBeBuiltFrom() throws {
        let resnet = ModelConfig(arch: "resnet18-unet", bands: ["asp_dsm"], chipSize: 64, gsf: 2,
                                 encoder: EncoderConfig(name: "resnet18", inChannels: 1))
        let cases: [(ModelConfig, (inout ModelConfig) -> Void, String)] = [
            (unetConfig(), { $0.unet!.startKernel = 1 << 40; $0.unet!.maxFilterDepth = 1 << 40 },
             "'unet.start_kernel' is 1099511627776; it must be between 1 and 1024"),
            (unetConfig(), { $0.unet!.maxFilterDepth = -512 }, "'unet.max_filter_depth' is -512; it must be between 1 and 1024"),
            (unetConfig(), { $0.unet!.depth = 70 }, "'unet.depth' is 70; it must be between 1 and 12"),
            (unetConfig(), { $0.chipSize = 4 }, "'chip_size' is 4; it must be between 8 and 4096"),
            (unetConfig(), { $0.chipSize = 33 }, "'chip_size' is 33; a 'unet' model needs a multiple of 4 (2^unet.depth)"),
            (unetConfig(), { $0.bands = ["asp_dsm"] }, "'unet.n_input_channels' is 3, but 'bands' lists 1"),
            (unetConfig(), { $0.gsf = 1e308 }, "'gsf' is 1e+308; it must be between 1e-06 and 1e+06"),
            (resnet, { $0.encoder!.decoderChannels = [256, 128, 64, 32, -16] },
             "'encoder.decoder_channels.4' is -16; it must be between 1 and 1024"),
        ]
        for (i, (base, change, problem)) in cases.enumerated() {
            var config = base
            change(&config)
            let path = folder.appendingPathComponent("crafted\(i).safetensors").path
            try writeBareCheckpoint(config, to: path)
            assertRefused(try runDeepDEM(["info", path]), "\(path): 'deepdem' metadata: \(problem)")
        }
    }

    /// Names and values from the file reach the terminal without their control characters, so a
    /// checkpoint cannot clear the screen or forge lines, in the table or in an error.
    func testControlCharactersNeverReachTheTerminal() throws {
        var config = unetConfig()
        config.target = "lidar\u{1B}[2J_data"
        let (path, _) = try save(config, "escapes.safetensors", metadata: ["note": "one\u{1B}[31m\ntwo\rthree\u{7}"])
        let output = try runDeepDEM(["info", path])
        XCTAssertEqual(output.status, 0, output.stderr)
        XCTAssertFalse(output.stdout.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || $0.value == 0x7F }, output.stdout)
        XCTAssertTrue(output.stdout.contains("\nnote          one [31m two three \n"), output.stdout)

        config.arch = "vit\u{1B}[2J\nforged line"
        let bad = folder.appendingPathComponent("bad.safetensors").path
        try writeBareCheckpoint(config, to: bad)
        let refused = try runDeepDEM(["info", bad])
        assertRefused(refused, "\(bad): 'deepdem' metadata: 'arch' is 'vit [2J forged line'")
        XCTAssertFalse(refused.stderr.contains("\u{1B}"), refused.stderr)
    }
}
