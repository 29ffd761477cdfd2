import Foundation
import NN
import XCTest

/// `EncoderInit`: the first convolution adapted exactly as smp's `patch_first_conv` (against
/// smp's own output, Fixtures/make_encoder_fixture.py), the encoder's other tensors taken as they
/// are, the decoder and head left at their seeded initialization, and refused files leaving the
/// network untouched.
final class EncoderInitTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "encoder-init-tests-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func testFirstConvolutionIsAdaptedAsSmpDoesBitForBit() throws {
        let f = try SafeTensors(contentsOf: GoldenTests.fixture("encoder_adapt"))
        let source = try XCTUnwrap(f.info("conv1.weight"))
        let w = try f.floats("conv1.weight")
        let (o, area) = (source.shape[0], source.shape[2] * source.shape[3])
        XCTAssertEqual(source.shape[1], 3)
        for c in [1, 2, 4, 5, 6] {
            let smp = try f.floats("conv1.weight.C\(c)")
            let ours = EncoderInit.adaptFirstConv(w, outChannels: o, kernelArea: area, to: c)
            XCTAssertEqual(ours.count, o * c * area)
            XCTAssertEqual(ours.map(\.bitPattern), smp.map(\.bitPattern), "C = \(c)")
        }
        XCTAssertEqual(EncoderInit.adaptFirstConv(w, outChannels: o, kernelArea: area, to: 3), w)
    }

    func config(_ name: String, channels: Int) -> ModelConfig {
        let bands = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"]
        return ModelConfig(arch: "\(name)-unet", bands: Array(bands.prefix(channels)), chipSize: 32, gsf: 2,
                           encoder: EncoderConfig(name: name, inChannels: channels))
    }

    /// The `encoder.*` state of a seeded 3-channel network, as `from-torchvision` writes a file.
    func encoderFile(_ name: String, seed: UInt64, batches: Int64? = 7) throws -> (path: String, net: any Network) {
        let net = try makeNetwork(config(name, channels: 3), seed: seed)
        var w = SafeTensorsWriter(metadata: [EncoderInit.metadataKey: #"{"in_channels": 3, "name": "\#(name)", "source": "x.pth"}"#])
        for (key, entry) in net.state() where key.hasPrefix("encoder.") {
            switch entry {
            case .parameter(let p): w.add(key, p.value)
            case .buffer(let t): w.add(key, t)
            case .counter: if let batches { w.add(key, shape: [], int64s: [batches]) }
            }
        }
        let path = dir + "/\(name)-\(seed).safetensors"
        try w.write(to: path)
        return (path, net)
    }

    func values(_ net: any Network) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (key, entry) in net.state() {
            switch entry {
            case .parameter(let p): out[key] = p.value.array
            case .buffer(let t): out[key] = t.array
            case .counter(let c): out[key] = [Float(c.value)]
            }
        }
        return out
    }

    func testEncoderIsTakenStemAdaptedDecoderKeepsItsSeed() throws {
        let (path, imagenet) = try encoderFile("resnet18", seed: 1)
        let net = try makeNetwork(config("resnet18", channels: 6), seed: 2)
        let seeded = values(try makeNetwork(config("resnet18", channels: 6), seed: 2))
        let loaded = try EncoderInit.load(path, into: net)
        XCTAssertEqual(loaded.name, "resnet18")
        XCTAssertEqual(loaded.adapted?.name, "encoder.conv1.weight")
        XCTAssertEqual(loaded.adapted?.from, 3)
        XCTAssertEqual(loaded.adapted?.to, 6)
        XCTAssertEqual(loaded.sha256, try SHA256.hex(ofFile: path))
        let source = values(imagenet), after = values(net)
        XCTAssertEqual(loaded.tensors, source.keys.filter { $0.hasPrefix("encoder.") }.count, "counters included")
        var encoder = 0, rest = 0, differs = 0
        for (key, v) in after {
            if key == "encoder.conv1.weight" {
                XCTAssertEqual(v, EncoderInit.adaptFirstConv(source[key]!, outChannels: 64, kernelArea: 49, to: 6))
            } else if key.hasSuffix("num_batches_tracked") && key.hasPrefix("encoder.") {
                XCTAssertEqual(v, [7], "the file's count, not the source network's: \(key)")
            } else if key.hasPrefix("encoder.") {
                XCTAssertEqual(v, source[key], key)
                if v != seeded[key] { differs += 1 }
                encoder += 1
            } else {
                XCTAssertEqual(v, seeded[key], "decoder and head keep their seeded initialization: \(key)")
                rest += 1
            }
        }
        XCTAssertEqual(encoder, 99, "resnet18: 100 float tensors (torchvision's 120 less 20 counters), the stem aside")
        XCTAssertGreaterThanOrEqual(differs, 19, "the other 19 convolutions differ between the seeds, so the copy is tested")
        XCTAssertGreaterThan(rest, 20)

        // A file without the counters (torchvision's older files) leaves them as they were.
        let (older, _) = try encoderFile("resnet18", seed: 3, batches: nil)
        let other = try makeNetwork(config("resnet18", channels: 1), seed: 2)
        let taken = try EncoderInit.load(older, into: other)
        XCTAssertEqual(values(other)["encoder.bn1.num_batches_tracked"], [0])
        XCTAssertEqual(taken.tensors, loaded.tensors - 20, "resnet18 has 20 BatchNorms")
    }

    func assertRefused(_ path: String, into net: any Network, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        let before = values(net)
        XCTAssertThrowsError(try EncoderInit.load(path, into: net), file: file, line: line) {
            XCTAssertEqual("\($0)", expected, file: file, line: line)
        }
        XCTAssertEqual(values(net), before, "a refused file changed the network", file: file, line: line)
    }

    func testOtherDepthsAndFilesWithoutAnEncoderAreRefusedNamingTheFirstDifference() throws {
        let (r18, _) = try encoderFile("resnet18", seed: 1)
        let (r34, _) = try encoderFile("resnet34", seed: 1)
        assertRefused(r18, into: try makeNetwork(config("resnet34", channels: 6), seed: 0),
                      "\(r18): lacks tensor 'encoder.layer1.2.conv1.weight' of the resnet34 encoder (the file holds a resnet18 encoder)")
        assertRefused(r34, into: try makeNetwork(config("resnet18", channels: 2), seed: 0),
                      "\(r34): tensor 'encoder.layer1.2.conv1.weight' is not part of the resnet18 encoder (the file holds a resnet34 encoder)")

        // A wider stem (another width) is a shape mismatch, not an adaptation.
        var w = SafeTensorsWriter()
        let net = try makeNetwork(config("resnet18", channels: 3), seed: 0)
        for (key, entry) in net.state() where key.hasPrefix("encoder.") {
            if key == "encoder.bn1.weight" { w.add(key, shape: [32], floats: Array(repeating: 1, count: 32)); continue }
            if case .parameter(let p) = entry { w.add(key, p.value) }
            if case .buffer(let t) = entry { w.add(key, t) }
        }
        let narrow = dir + "/narrow.safetensors"
        try w.write(to: narrow)
        assertRefused(narrow, into: try makeNetwork(config("resnet18", channels: 3), seed: 1),
                      "\(narrow): tensor 'encoder.bn1.weight' has shape [32] but the resnet18 encoder's is [64]")

        let whole = dir + "/whole.safetensors"
        let unet = try makeNetwork(ModelConfig(arch: "unet", bands: ["asp_dsm"], chipSize: 32, gsf: 2,
                                               unet: UNetConfig(nInputChannels: 1, depth: 2, startKernel: 4)), seed: 0)
        try Checkpoint.save(try makeNetwork(config("resnet18", channels: 3), seed: 0), to: whole)
        assertRefused(r18, into: unet, "\(r18): a pretrained encoder initializes a ResNet U-Net; arch 'unet' has no ResNet encoder")

        var plain = SafeTensorsWriter()
        plain.add("conv1.weight", shape: [1], floats: [1])
        let bare = dir + "/bare.safetensors"
        try plain.write(to: bare)
        assertRefused(bare, into: try makeNetwork(config("resnet18", channels: 3), seed: 0),
                      "\(bare): no 'encoder.*' tensors: not an encoder file (tools/convert_checkpoint.py from-torchvision writes one)")
        // A whole model's checkpoint holds the encoder too; its other tensors are not looked at.
        XCTAssertEqual(try EncoderInit.load(whole, into: try makeNetwork(config("resnet18", channels: 4), seed: 1)).adapted?.to, 4)
    }
}
