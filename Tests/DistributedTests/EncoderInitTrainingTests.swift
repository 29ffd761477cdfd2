import Distributed
import Foundation
import NN
import XCTest

/// `init_encoder` in `deepdem train`: step 0 starts from the file's encoder (stem adapted to the
/// bands) and the seeded decoder, the log names the file and its SHA-256, a resumed run equals
/// the uninterrupted one, and files that do not fit are refused before training.
final class EncoderInitTrainingTests: XCTestCase {
    static let bands = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi"]

    /// A small ResNet U-Net run; `TrainingRun.config`'s U-Net keys do not apply.
    func config(_ scene: String, _ out: String, _ extra: [String: Any] = [:]) throws -> String {
        try TrainingRun.config(scene: scene, out: out, ["arch": "resnet18-unet", "bands": Self.bands, "batch_size": 2,
                                                       "samples_per_epoch": 8, "val_samples": 4].merging(extra) { $1 })
    }

    /// What `from-torchvision` writes, made from a seeded 3-channel network instead of ImageNet.
    func encoderFile(_ name: String, in folder: String) throws -> (path: String, tensors: [String: [Float]]) {
        let net = try makeNetwork(ModelConfig(arch: "\(name)-unet", bands: Array(Self.bands.prefix(3)), chipSize: 32, gsf: 1,
                                              encoder: EncoderConfig(name: name, inChannels: 3)), seed: 11)
        var w = SafeTensorsWriter(metadata: [EncoderInit.metadataKey: #"{"in_channels": 3, "name": "\#(name)", "source": "test"}"#])
        var tensors: [String: [Float]] = [:]
        for (key, entry) in net.state() where key.hasPrefix("encoder.") {
            if case .parameter(let p) = entry { w.add(key, p.value); tensors[key] = p.value.array }
            if case .buffer(let t) = entry {
                // Running statistics unlike a fresh BatchNorm's, so taking them over shows.
                for i in 0..<t.count { t.data[i] += 0.25 }
                w.add(key, t)
                tensors[key] = t.array
            }
        }
        let path = folder + "/\(name)_imagenet.safetensors"
        try w.write(to: path)
        return (path, tensors)
    }

    func testStepZeroHoldsTheAdaptedEncoderAndTheSeededDecoderAndResumeEqualsUninterrupted() throws {
        let scene = try TrainingRun.scene(), folder = TrainingRun.folder("init-encoder")
        let (file, imagenet) = try encoderFile("resnet18", in: folder)

        let zero = folder + "/zero"
        let r0 = try TrainingRun.run(["train", "--config", config(scene, zero, ["max_steps": 0]), "--init-encoder", file])
        XCTAssertEqual(r0.status, 0, r0.stderr)
        XCTAssertTrue(r0.stdout.contains("init_encoder \(file) (sha256 \(try SHA256.hex(ofFile: file))): 100 tensors of the resnet18 "
                                         + "encoder, encoder.conv1.weight adapted from 3 to 4 input channels"), r0.stdout)
        let step0 = try TrainingRun.weights(zero + "/last.safetensors")
        let seeded = try makeNetwork(try Checkpoint.readConfig(zero + "/last.safetensors"), seed: 3)
        var checked = 0
        for (key, entry) in seeded.state() where !key.hasSuffix("num_batches_tracked") {
            if key == "encoder.conv1.weight" {
                XCTAssertEqual(step0[key], EncoderInit.adaptFirstConv(imagenet[key]!, outChannels: 64, kernelArea: 49, to: 4))
            } else if key.hasPrefix("encoder.") {
                XCTAssertEqual(step0[key], imagenet[key], key)
            } else {
                var seededValue: [Float] = []
                if case .parameter(let p) = entry { seededValue = p.value.array }
                if case .buffer(let t) = entry { seededValue = t.array }
                XCTAssertEqual(step0[key], seededValue, "the decoder keeps the seed's initialization: \(key)")
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 130)

        let straight = folder + "/straight"
        let a = try TrainingRun.run(["train", "--config", config(scene, straight, ["max_steps": 4, "init_encoder": file])])
        XCTAssertEqual(a.status, 0, a.stderr)
        let split = folder + "/split"
        let splitConfig = try config(scene, split, ["max_steps": 2, "init_encoder": file])
        XCTAssertEqual(try TrainingRun.run(["train", "--config", splitConfig]).status, 0)
        let b = try TrainingRun.run(["train", "--config", splitConfig, "--resume", "--max-steps", "4"])
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertFalse(b.stdout.contains("init_encoder"), "a resumed run does not load the encoder again: \(b.stdout)")
        let wa = try TrainingRun.weights(straight + "/last.safetensors"), wb = try TrainingRun.weights(split + "/last.safetensors")
        let differing = wa.keys.filter { wa[$0] != wb[$0] }.sorted()
        XCTAssertTrue(differing.isEmpty, "resumed weights differ from the uninterrupted run's in \(differing.count) tensors, e.g. \(differing.prefix(3))")
        XCTAssertNotEqual(wa["encoder.layer1.0.conv1.weight"], step0["encoder.layer1.0.conv1.weight"], "training moved the encoder")
    }

    func testFilesThatDoNotFitAreRefusedBeforeTraining() throws {
        let scene = try TrainingRun.scene(), folder = TrainingRun.folder("init-encoder-refused")
        let (r18, _) = try encoderFile("resnet18", in: folder)
        var plain = SafeTensorsWriter()
        plain.add("conv1.weight", shape: [1], floats: [1])
        let bare = folder + "/bare.safetensors"
        try plain.write(to: bare)
        let out = folder + "/run"
        for (extra, message) in [
            (["init_encoder": r18, "arch": "resnet34-unet"],
             "\(r18): lacks tensor 'encoder.layer1.2.conv1.weight' of the resnet34 encoder (the file holds a resnet18 encoder)"),
            (["init_encoder": bare], "\(bare): no 'encoder.*' tensors"),
            (["init_encoder": folder + "/missing.safetensors"], folder + "/missing.safetensors"),
        ] as [([String: Any], String)] {
            let r = try TrainingRun.run(["train", "--config", config(scene, out, extra)])
            XCTAssertEqual(r.status, 1, "\(extra): \(r.stdout)")
            let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem: error:") }
            XCTAssertEqual(lines.count, 1, r.stderr)
            XCTAssertTrue(lines.first?.contains(message) ?? false, r.stderr)
            XCTAssertFalse(r.stdout.contains("step 1/"), "\(extra): trained anyway")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/last.safetensors"))
        }
        let unet = try TrainingRun.run(["train", "--config", TrainingRun.config(scene: scene, out: out, ["init_encoder": r18])])
        XCTAssertEqual(unet.status, 1)
        XCTAssertTrue(unet.stderr.contains("'init_encoder' loads a pretrained ResNet encoder; arch 'unet' has none"), unet.stderr)
        let both = try TrainingRun.run(["train", "--config", config(scene, out, ["init_encoder": r18]), "--init", r18])
        XCTAssertEqual(both.status, 1)
        XCTAssertTrue(both.stderr.contains("--init loads a whole model and init_encoder its encoder: give one of them"), both.stderr)
    }
}
