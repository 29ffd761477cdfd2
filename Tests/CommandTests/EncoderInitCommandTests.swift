import Data
import Foundation
import NN
import XCTest

/// ImageNet-initialized encoders end to end against PyTorch: a torchvision ResNet state_dict,
/// converted with `convert_checkpoint.py from-torchvision`, initializes a 0-step `deepdem train`
/// run; its checkpoint refines as smp's Unet does when smp itself loads the same torchvision
/// weights (`set_in_channels` on the pretrained encoder) and takes that run's seeded decoder.
/// Needs a Python with torch (skipped in CI, as ConvertCheckpointTests).
final class EncoderInitCommandTests: TorchTestCase {

    /// A torchvision `name` with random weights and BatchNorm statistics, saved as torchvision saves its downloads.
    func torchvisionFile(_ name: String) throws -> String {
        let made = try python(["-c", """
            import sys, torch, torchvision
            torch.manual_seed(5)
            model = getattr(torchvision.models, sys.argv[1])(weights=None)
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.1); m.running_var.uniform_(0.5, 1.5)
                    m.weight.data.uniform_(0.5, 1.5); m.bias.data.normal_(0, 0.1)
                    m.num_batches_tracked.fill_(1000)
            torch.save(model.state_dict(), sys.argv[2])
            """, name, path("\(name).pth")])
        XCTAssertEqual(made.status, 0, made.stderr)
        return path("\(name).pth")
    }

    func testTorchvisionEncoderInitializesARunThatRefinesAsSmp() throws {
        let pth = try torchvisionFile("resnet18")
        let converted = try convert(["from-torchvision", pth, path("resnet18_imagenet.safetensors")])
        XCTAssertEqual(converted.status, 0, converted.stderr)
        XCTAssertEqual(converted.stdout, "\(path("resnet18_imagenet.safetensors")): resnet18 encoder from resnet18.pth, "
                       + "120 tensors, 11,176,512 parameters\n")
        let file = try SafeTensors(contentsOf: path("resnet18_imagenet.safetensors"))
        XCTAssertTrue(file.tensors.allSatisfy { $0.name.hasPrefix("encoder.") })
        XCTAssertEqual(file.info("encoder.bn1.num_batches_tracked")?.dtype, .i64)
        XCTAssertEqual(file.metadata["encoder"], #"{"in_channels": 3, "name": "resnet18", "source": "resnet18.pth"}"#)

        let scene = path("scene")
        let synth = try runDeepDEM(["synth", "--out", scene, "--size", "128"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        // The synthetic holes speckle every 32 px tile, and the tiler's fill of them is not what
        // is compared here: the holes get finite values, so each tile is the network's alone.
        for band in ["asp_dsm", "triangulation_error"] {
            let raster = try Raster(path: Scene.file(scene, band))
            var values = try raster.readAll()
            let valid = values.filter { !$0.isNaN }
            let mean = valid.reduce(0, +) / Float(valid.count)
            for i in values.indices where values[i].isNaN { values[i] = mean }
            try RasterWriter.write(values, grid: raster.grid, nodata: SyntheticScene.nodata[band], to: Scene.file(scene, band),
                                   overwrite: true)
        }
        let config: [String: Any] = ["data": scene, "out": path("run"), "arch": "resnet18-unet", "chip_size": 32, "gsf": 5.0,
                                     "batch_size": 2, "samples_per_epoch": 8, "val_samples": 4, "max_steps": 0, "seed": 4, "train_split": 0.5,
                                     "init_encoder": path("resnet18_imagenet.safetensors")]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path("train.json")))
        let train = try runDeepDEM(["train", "--config", path("train.json")])
        XCTAssertEqual(train.status, 0, train.stderr)
        let refine = try runDeepDEM(["refine", "--checkpoint", path("run/last.safetensors"), "--data", scene,
                                     "--out", path("refined.tif"), "--stride", "32"])
        XCTAssertEqual(refine.status, 0, refine.stderr)
        var stack: [Float] = []
        let bands = try Checkpoint.readConfig(path("run/last.safetensors")).bands
        for band in bands { stack += try Raster(path: Scene.file(scene, band)).readAll() }
        try write(stack, to: path("bands.f32"))
        try write(try Raster(path: path("refined.tif")).readAll(), to: path("refined.f32"))

        // smp's own way to the same encoder: the torchvision weights into a 3-channel encoder, then
        // set_in_channels (what smp.Unet(in_channels=C, encoder_weights="imagenet") does).
        let checked = try python(["-c", """
            import json, sys
            import numpy as np, torch
            import segmentation_models_pytorch as smp
            from safetensors import safe_open
            from safetensors.torch import load_file
            from reference_models import residual_forward
            pth, swift_ckpt, bands, refined = sys.argv[1:5]
            with safe_open(swift_ckpt, "pt") as f:
                config = json.loads(f.metadata()["deepdem"])
            c = len(config["bands"])
            model = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=1)
            model.encoder.load_state_dict({k: v for k, v in torch.load(pth, weights_only=True).items() if not k.startswith("fc.")})
            model.encoder.set_in_channels(c, pretrained=True)
            swift = load_file(swift_ckpt)
            ours = model.state_dict()
            encoder_diff = max(float((swift[k].double() - v.double()).abs().max()) for k, v in ours.items() if k.startswith("encoder."))
            model.load_state_dict({k: (swift[k] if not k.startswith("encoder.") else v) for k, v in ours.items()}, strict=True)
            model.eval()
            x = np.fromfile(bands, dtype="<f4").reshape(c, 128, 128)
            out = np.fromfile(refined, dtype="<f4").reshape(128, 128)
            s, tiles, diff, residual = config["chip_size"], 0, 0.0, 0.0
            for y in range(0, 128, s):
                for x0 in range(0, 128, s):
                    chip = x[:, y:y + s, x0:x0 + s]
                    if np.isnan(chip).any():
                        continue
                    with torch.no_grad():
                        t = residual_forward(model, torch.from_numpy(chip[None].copy()), config["gsf"])[0, 0].numpy()
                    diff = max(diff, float(np.abs(out[y:y + s, x0:x0 + s] - t).max()))
                    residual = max(residual, float(np.abs(t - chip[0]).max()))
                    tiles += 1
            print(json.dumps(dict(encoder_diff=encoder_diff, tiles=tiles, diff=diff, residual=residual, channels=c)))
            """, pth, path("run/last.safetensors"), path("bands.f32"), path("refined.f32")])
        XCTAssertEqual(checked.status, 0, checked.stderr)
        let result = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(checked.stdout.utf8)) as? [String: Any], checked.stdout)
        XCTAssertEqual(result["channels"] as? Int, 6, "the default bands: the stem is adapted, not copied")
        XCTAssertEqual(result["encoder_diff"] as? Double, 0, "the step-0 encoder is smp's, bit for bit (BatchNorm statistics included)")
        let tiles = try XCTUnwrap(result["tiles"] as? Int), diff = try XCTUnwrap(result["diff"] as? Double)
        let residual = try XCTUnwrap(result["residual"] as? Double)
        XCTAssertEqual(tiles, 16, "every tile compared")
        XCTAssertGreaterThan(residual, 0.1, "the network changes the DSM, so the comparison means something")
        XCTAssertLessThan(diff, 1e-4, "Swift refine vs smp over \(tiles) tiles, metres (residuals up to \(residual) m)")
    }

    func testFromTorchvisionTellsTheDepthsApartAndRefusesOthers() throws {
        let r50 = try torchvisionFile("resnet50")
        let converted = try convert(["from-torchvision", r50, path("r50.safetensors")])
        XCTAssertEqual(converted.status, 0, converted.stderr)
        let file = try SafeTensors(contentsOf: path("r50.safetensors"))
        XCTAssertEqual(file.metadata["encoder"], #"{"in_channels": 3, "name": "resnet50", "source": "resnet50.pth"}"#)
        XCTAssertEqual(file.info("encoder.layer1.0.conv3.weight")?.shape, [256, 64, 1, 1])
        XCTAssertNil(file.info("encoder.fc.weight"))
        XCTAssertNil(file.info("fc.weight"))

        let again = try convert(["from-torchvision", r50, path("r50.safetensors")])
        XCTAssertEqual(again.status, 1)
        XCTAssertEqual(again.stderr, "convert_checkpoint: error: \(path("r50.safetensors")): exists (add --overwrite to replace it)\n")
        XCTAssertEqual(try convert(["from-torchvision", r50, path("r50.safetensors"), "--overwrite"]).status, 0)

        let r101 = try torchvisionFile("resnet101")
        let refused = try convert(["from-torchvision", r101, path("r101.safetensors")])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.stderr, "convert_checkpoint: error: \(r101): a ResNet with [3, 4, 23, 3] Bottleneck blocks per "
                       + "stage; supported: resnet18, resnet34, resnet50\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("r101.safetensors")), "nothing half-written")
    }

    private func write(_ values: [Float], to path: String) throws {
        try values.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: URL(fileURLWithPath: path))
    }
}
