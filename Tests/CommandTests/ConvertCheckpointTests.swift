import Data
import Foundation
import NN
import Primitives
import XCTest

/// tools/convert_checkpoint.py against real PyTorch: a DeepDEM-style Lightning checkpoint becomes
/// a safetensors file that `deepdem info` reads and `deepdem refine` runs with the same results as
/// PyTorch, and goes back to Lightning and ResDepth checkpoints unchanged. Needs a Python with
/// torch, which CI does not have; there the tests are skipped.
final class ConvertCheckpointTests: TorchTestCase {
    static let bands = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"]

    func testDeepDEMLightningCheckpointRefinesAsInPyTorchAndConvertsBackExactly() throws {
        // DeepDEM's own settings for a 16-pixel chip: its U-Net has depth log2(16) = 4, start_kernel 64,
        // no outer skip; GSF_DICT overrides the built-in table (which has no 16).
        let made = try python(["-c", """
            import sys, torch
            from reference_models import make_module
            torch.manual_seed(3)
            unet = dict(n_input_channels=6, depth=4, start_kernel=64, max_filter_depth=512, do_BN=False,
                        bias_conv_layer=True, outer_skip=False, outer_skip_BN=False)
            model = make_module(dict(arch="unet", unet=unet))
            hp = dict(model="unet", encoder="None", encoder_weights="imagenet", chip_size=16, do_BN=False,
                      bias_conv_layer=True, bands=\(pythonList(Self.bands + ["lidar_data"])), lr=5e-4, max_epochs=300,
                      lr_scheduler=True, lr_scheduler_scale_factor=0.5, lr_scheduler_patience=50, channel_swap=True,
                      GSF_DICT={16: torch.tensor(3.25), 256: torch.tensor(34.9)}, datapath="/data/mt_baker")
            torch.save({"epoch": 7, "global_step": 280, "pytorch-lightning_version": "2.4.0",
                        "state_dict": {"model." + k: v for k, v in model.state_dict().items()},
                        "hparams_name": "kwargs", "hyper_parameters": hp, "optimizer_states": [], "lr_schedulers": []},
                       sys.argv[1])
            """, path("deepdem.ckpt")])
        XCTAssertEqual(made.status, 0, made.stderr)

        let converted = try convert(["to-safetensors", path("deepdem.ckpt"), path("model.safetensors")])
        XCTAssertEqual(converted.status, 0, converted.stderr)
        XCTAssertEqual(converted.stderr, "", "gsf comes from GSF_DICT, so no note")
        XCTAssertTrue(converted.stdout.hasPrefix("\(path("model.safetensors")): unet, "), converted.stdout)

        let info = try runDeepDEM(["info", path("model.safetensors")])
        XCTAssertEqual(info.status, 0, info.stderr)
        let field = { (key: String) in
            info.stdout.split(separator: "\n").first { $0.hasPrefix(key + " ") }
                .map { $0.dropFirst(key.count).trimmingCharacters(in: .whitespaces) }
        }
        XCTAssertEqual(field("architecture"), "unet")
        XCTAssertEqual(field("bands"), Self.bands.joined(separator: ", "))
        XCTAssertEqual(field("target"), "lidar_data")
        XCTAssertEqual(field("chip size"), "16 px")
        XCTAssertEqual(field("gsf"), "3.25")
        XCTAssertEqual(field("unet"), "n_input_channels 6, depth 4, start_kernel 64, max_filter_depth 512, do_BN false, "
                       + "bias_conv_layer true, outer_skip false, outer_skip_BN false, up_mode transpose")

        // With the stride equal to the chip size every pixel is one tile's prediction, which PyTorch
        // recomputes for each tile without nodata (those the tiler would fill).
        let scene = path("scene")
        let synth = try runDeepDEM(["synth", "--out", scene, "--size", "128"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let refine = try runDeepDEM(["refine", "--checkpoint", path("model.safetensors"), "--data", scene,
                                     "--out", path("refined.tif"), "--stride", "16"])
        XCTAssertEqual(refine.status, 0, refine.stderr)
        var stack: [Float] = []
        for band in Self.bands { stack += try Raster(path: Scene.file(scene, band)).readAll() }
        try write(stack, to: path("bands.f32"))
        try write(try Raster(path: path("refined.tif")).readAll(), to: path("refined.f32"))

        let back = try convert(["to-lightning", path("model.safetensors"), path("back.ckpt")])
        XCTAssertEqual(back.status, 0, back.stderr)
        XCTAssertEqual(back.stderr, "", "DeepDEM rebuilds this U-Net, so no note")

        let checked = try python(["-c", """
            import json, sys
            import numpy as np, torch
            from safetensors import safe_open
            from safetensors.torch import load_file
            from reference_models import make_module, residual_forward
            weights, bands, refined, original, back = sys.argv[1:6]
            with safe_open(weights, "pt") as f:
                config = json.loads(f.metadata()["deepdem"])
            model = make_module(config)
            model.load_state_dict(load_file(weights), strict=True)
            model.eval()
            x = np.fromfile(bands, dtype="<f4").reshape(len(config["bands"]), 128, 128)
            swift = np.fromfile(refined, dtype="<f4").reshape(128, 128)
            s, tiles, diff, residual = config["chip_size"], 0, 0.0, 0.0
            for y in range(0, 128, s):
                for x0 in range(0, 128, s):
                    chip = x[:, y:y + s, x0:x0 + s]
                    if np.isnan(chip).any():
                        continue
                    with torch.no_grad():
                        torch_refined = residual_forward(model, torch.from_numpy(chip[None].copy()), config["gsf"])[0, 0].numpy()
                    diff = max(diff, float(np.abs(swift[y:y + s, x0:x0 + s] - torch_refined).max()))
                    residual = max(residual, float(np.abs(torch_refined - chip[0]).max()))
                    tiles += 1
            a = torch.load(original, weights_only=True)
            b = torch.load(back, weights_only=True)
            same = (list(a["state_dict"]) == list(b["state_dict"])
                    and all(torch.equal(v, b["state_dict"][k]) and v.dtype == b["state_dict"][k].dtype
                            for k, v in a["state_dict"].items()))
            hp = b["hyper_parameters"]
            print(json.dumps(dict(tiles=tiles, diff=diff, residual=residual, same=same, tensors=len(b["state_dict"]),
                                  bands=hp["bands"], chip_size=hp["chip_size"], gsf=hp["GSF_DICT"][16], model=hp["model"],
                                  do_BN=hp["do_BN"], bias_conv_layer=hp["bias_conv_layer"], lr=hp["lr"])))
            """, path("model.safetensors"), path("bands.f32"), path("refined.f32"), path("deepdem.ckpt"), path("back.ckpt")])
        XCTAssertEqual(checked.status, 0, checked.stderr)
        let result = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(checked.stdout.utf8)) as? [String: Any], checked.stdout)
        let tiles = try XCTUnwrap(result["tiles"] as? Int), diff = try XCTUnwrap(result["diff"] as? Double)
        let residual = try XCTUnwrap(result["residual"] as? Double)
        XCTAssertGreaterThanOrEqual(tiles, 8, "enough nodata-free tiles to compare")
        XCTAssertGreaterThan(residual, 0.1, "the network changes the DSM, so the comparison means something")
        // Heights near 300 m have float32 steps of 3.05e-5 m: this allows three (one is what it takes).
        XCTAssertLessThan(diff, 1e-4, "Swift refine vs PyTorch over \(tiles) tiles, metres (residuals up to \(residual) m)")

        XCTAssertEqual(result["same"] as? Bool, true, "Lightning → safetensors → Lightning keeps every tensor")
        XCTAssertEqual(result["tensors"] as? Int, 26)
        XCTAssertEqual(result["bands"] as? [String], Self.bands + ["lidar_data"])
        XCTAssertEqual(result["chip_size"] as? Int, 16)
        XCTAssertEqual(result["gsf"] as? Double, 3.25)
        XCTAssertEqual(result["model"] as? String, "unet")
        XCTAssertEqual(result["do_BN"] as? Bool, false)
        XCTAssertEqual(result["bias_conv_layer"] as? Bool, true)
        XCTAssertEqual(result["lr"] as? Double, 5e-4, "DeepDEM's other hyper-parameters travel along")

        // ResDepth and back: the same tensors, the same configuration.
        XCTAssertEqual(try convert(["to-resdepth", path("model.safetensors"), path("resdepth.pth")]).status, 0)
        let again = try convert(["to-safetensors", path("resdepth.pth"), path("again.safetensors")])
        XCTAssertEqual(again.status, 0, again.stderr)
        let first = try SafeTensors(contentsOf: path("model.safetensors")), second = try SafeTensors(contentsOf: path("again.safetensors"))
        XCTAssertEqual(first.metadata["deepdem"], second.metadata["deepdem"])
        XCTAssertEqual(Set(first.tensors.map(\.name)), Set(second.tensors.map(\.name)))
        for t in first.tensors {
            XCTAssertEqual(second.info(t.name)?.shape, t.shape, t.name)
            XCTAssertEqual(try first.floats(t.name), try second.floats(t.name), t.name)
        }
    }

    func testResDepthCheckpointNeedsItsSettingsAndTakesNoOuterSkip() throws {
        // ResDepth's UNet with its defaults (BatchNorm, outer skip) as ResDepth's trainer saves it.
        let made = try python(["-c", """
            import sys, torch
            from reference_models import make_module
            unet = dict(n_input_channels=3, depth=2, start_kernel=8, max_filter_depth=512, do_BN=True,
                        bias_conv_layer=False, outer_skip=True, outer_skip_BN=False)
            model = make_module(dict(arch="unet", unet=unet))
            state = {k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()}
            torch.save({"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {}, "loss_val": 1.5}, sys.argv[1])
            """, path("Model_best.pth")])
        XCTAssertEqual(made.status, 0, made.stderr)

        let refused = try convert(["to-safetensors", path("Model_best.pth"), path("model.safetensors")])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.stdout, "")
        XCTAssertEqual(refused.stderr, "convert_checkpoint: error: \(path("Model_best.pth")): a ResDepth checkpoint that does "
                       + "not record bands, chip size, gsf: give --bands --chip-size --gsf (ResDepth: the DSM std of its "
                       + "normalization file)\n")
        let wrongBands = try convert(["to-safetensors", path("Model_best.pth"), path("model.safetensors"),
                                      "--bands", "asp_dsm", "ortho_channel1", "--chip-size", "64", "--gsf", "2.5"])
        XCTAssertEqual(wrongBands.status, 1)
        XCTAssertTrue(wrongBands.stderr.hasSuffix("the model takes 3 input channels but 2 bands are given (asp_dsm, ortho_channel1)\n"),
                      wrongBands.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["Model_best.pth"],
                       "refusals leave nothing behind")

        let settings = ["--bands", "asp_dsm", "ortho_channel1", "ortho_channel2", "--chip-size", "64", "--gsf", "2.5"]
        let unnormalized = try convert(["to-safetensors", path("Model_best.pth"), path("model.safetensors")] + settings)
        XCTAssertEqual(unnormalized.status, 1)
        XCTAssertEqual(unnormalized.stderr, "convert_checkpoint: error: \(path("Model_best.pth")): ResDepth standardized this model's "
                       + "orthoimages with its training set's mean and std: give --image-normalization "
                       + "Image_normalization_parameters.p (or --ortho-mean M --ortho-std S)\n")
        let converted = try convert(["to-safetensors", path("Model_best.pth"), path("model.safetensors")] + settings
                                    + ["--ortho-mean", "none", "--ortho-std", "20.5"])
        XCTAssertEqual(converted.status, 0, converted.stderr)
        let config = try Checkpoint.readConfig(path("model.safetensors"))
        XCTAssertEqual(config.orthoStandardization, .fixed(mean: nil, std: 20.5))
        XCTAssertEqual(config.unet, UNetConfig(nInputChannels: 3, depth: 2, startKernel: 8, maxFilterDepth: 512, doBN: true,
                                               biasConvLayer: false, outerSkip: false, outerSkipBN: false),
                       "ResDepth's outer skip is DeepDEM's residual itself")
        XCTAssertEqual(config.gsf, 2.5)
        let file = try SafeTensors(contentsOf: path("model.safetensors"))
        XCTAssertEqual(file.info("bottleneck.1.num_batches_tracked")?.dtype, .i64)
        XCTAssertEqual(file.info("bottleneck.1.running_var")?.dtype, .f32, "float64 becomes float32")
        XCTAssertNoThrow(try Checkpoint.load(path("model.safetensors"), into: try makeNetwork(config)))

        let clobber = try convert(["to-safetensors", path("Model_best.pth"), path("model.safetensors")] + settings
                                  + ["--ortho-mean", "1", "--ortho-std", "2"])
        XCTAssertEqual(clobber.status, 1)
        XCTAssertTrue(clobber.stderr.hasSuffix("model.safetensors: exists (add --overwrite to replace it)\n"), clobber.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(),
                       ["Model_best.pth", "model.safetensors"])
    }

    /// ResDepth's own procedure against `deepdem refine` of the converted checkpoint: a ResDepth
    /// checkpoint (bilinear up-convs, outer skip, ortho bands) with its two normalization files,
    /// converted, refined by Swift, and recomputed tile by tile as ResDepth's dataset and model do
    /// it (DSM centred on the chip's mean and divided by the DSM std, orthos (x − mean)/std with the
    /// file's numbers, out · std + mean).
    func testResDepthModelWithItsNormalizationRefinesAsResDepth() throws {
        let scene = path("scene"), bands = ["asp_dsm", "ortho_channel1", "ortho_channel2"]
        let synth = try runDeepDEM(["synth", "--out", scene, "--size", "128"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        var stack: [Float] = []
        for band in bands { stack += try Raster(path: Scene.file(scene, band)).readAll() }
        try write(stack, to: path("bands.f32"))
        // The ortho mean and std over the whole scene, as ResDepth's training computes them.
        let made = try python(["-c", """
            import pickle, sys
            import numpy as np, torch
            from reference_models import ResDepthUNet
            x = np.fromfile(sys.argv[1], dtype="<f4").reshape(3, 128, 128)
            orthos = x[1:][np.isfinite(x[1:])]
            torch.manual_seed(5)
            model = ResDepthUNet(n_input_channels=3, depth=3, start_kernel=8, max_filter_depth=32, do_BN=False,
                                 bias_conv_layer=True, outer_skip=True, outer_skip_BN=False, up_mode="bilinear")
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1.5)
            torch.save({"epoch": 9, "model_state_dict": model.state_dict(), "optimizer_state_dict": {}}, sys.argv[2])
            with open(sys.argv[3], "wb") as f:
                pickle.dump({"mean": float(orthos.mean()), "std": float(orthos.std())}, f, protocol=pickle.HIGHEST_PROTOCOL)
            with open(sys.argv[4], "wb") as f:
                pickle.dump({"mean": None, "std": 2.75}, f, protocol=pickle.HIGHEST_PROTOCOL)
            """, path("bands.f32"), path("Model_best.pth"), path("Image_normalization_parameters.p"),
            path("DSM_normalization_parameters.p")])
        XCTAssertEqual(made.status, 0, made.stderr)
        let converted = try convert(["to-safetensors", path("Model_best.pth"), path("model.safetensors"), "--bands"] + bands
                                    + ["--chip-size", "16", "--dsm-normalization", path("DSM_normalization_parameters.p"),
                                       "--image-normalization", path("Image_normalization_parameters.p")])
        XCTAssertEqual(converted.status, 0, converted.stderr)
        let config = try Checkpoint.readConfig(path("model.safetensors"))
        XCTAssertEqual(config.unet?.upMode, "bilinear", "read from the tensors")
        XCTAssertEqual(config.unet?.outerSkip, false)
        XCTAssertEqual(config.gsf, 2.75, "the DSM file's std")
        guard case .fixed(let mean?, let std) = config.orthoStandardization else {
            return XCTFail("ortho_standardization \(config.orthoStandardization)")
        }
        XCTAssertGreaterThan(std, 0)
        let info = try runDeepDEM(["info", path("model.safetensors")])
        XCTAssertTrue(info.stdout.contains("ortho standardization  mean \(mean), std \(std)"), info.stdout)
        let refine = try runDeepDEM(["refine", "--checkpoint", path("model.safetensors"), "--data", scene,
                                     "--out", path("refined.tif"), "--stride", "16"])
        XCTAssertEqual(refine.status, 0, refine.stderr)
        try write(try Raster(path: path("refined.tif")).readAll(), to: path("refined.f32"))
        let checked = try python(["-c", """
            import json, pickle, sys
            import numpy as np, torch
            from reference_models import ResDepthUNet
            bands, refined, weights, image, dsm = sys.argv[1:6]
            model = ResDepthUNet(n_input_channels=3, depth=3, start_kernel=8, max_filter_depth=32, do_BN=False,
                                 bias_conv_layer=True, outer_skip=True, outer_skip_BN=False, up_mode="bilinear")
            model.load_state_dict(torch.load(weights, weights_only=True)["model_state_dict"])
            model.eval()
            image, dsm = pickle.load(open(image, "rb")), pickle.load(open(dsm, "rb"))
            x = np.fromfile(bands, dtype="<f4").reshape(3, 128, 128)
            swift = np.fromfile(refined, dtype="<f4").reshape(128, 128)
            tiles, diff, residual = 0, 0.0, 0.0
            for y in range(0, 128, 16):
                for x0 in range(0, 128, 16):
                    chip = x[:, y:y + 16, x0:x0 + 16].copy()
                    if np.isnan(chip).any():
                        continue
                    height_mean = chip[0].mean()
                    inputs = np.empty_like(chip)
                    inputs[0] = (chip[0] - height_mean) / np.float32(dsm["std"])
                    inputs[1:] = (chip[1:] - np.float32(image["mean"])) / np.float32(image["std"])
                    with torch.no_grad():
                        out = model(torch.from_numpy(inputs[None]))[0, 0].numpy()
                    resdepth = out * dsm["std"] + height_mean
                    diff = max(diff, float(np.abs(swift[y:y + 16, x0:x0 + 16] - resdepth).max()))
                    residual = max(residual, float(np.abs(resdepth - chip[0]).max()))
                    tiles += 1
            print(json.dumps(dict(tiles=tiles, diff=diff, residual=residual)))
            """, path("bands.f32"), path("refined.f32"), path("Model_best.pth"), path("Image_normalization_parameters.p"),
            path("DSM_normalization_parameters.p")])
        XCTAssertEqual(checked.status, 0, checked.stderr)
        let result = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(checked.stdout.utf8)) as? [String: Any], checked.stdout)
        let tiles = try XCTUnwrap(result["tiles"] as? Int), diff = try XCTUnwrap(result["diff"] as? Double)
        let residual = try XCTUnwrap(result["residual"] as? Double)
        print("ResDepth vs refine: \(tiles) tiles, max difference \(diff) m, residuals up to \(residual) m, ortho mean \(mean) std \(std)")
        XCTAssertGreaterThanOrEqual(tiles, 8, "enough nodata-free tiles to compare")
        XCTAssertGreaterThan(residual, 0.1, "the network changes the DSM, so the comparison means something")
        XCTAssertLessThan(diff, 1e-3, "Swift refine vs ResDepth over \(tiles) tiles, metres")

        // Back to ResDepth and here again: the standardization travels with the model.
        let toResDepth = try convert(["to-resdepth", path("model.safetensors"), path("back.pth")])
        XCTAssertEqual(toResDepth.status, 0, toResDepth.stderr)
        XCTAssertTrue(toResDepth.stderr.contains("Image_normalization_parameters.p of {'mean': \(mean), 'std': \(std)}"),
                      toResDepth.stderr)
        XCTAssertEqual(try convert(["to-safetensors", path("back.pth"), path("again.safetensors")]).status, 0)
        XCTAssertEqual(try Checkpoint.readConfig(path("again.safetensors")), config)
    }

    /// A bare state_dict of smp's Unet("resnet50"), as DeepDEM's scripts save one: the converter
    /// tells its bottleneck blocks from resnet34's (the same blocks per stage) by their conv3, the
    /// weights load into this project's resnet50-unet unchanged, and Lightning and back keeps them.
    func testResNet50StateDictConvertsAndLoads() throws {
        let made = try python(["-c", """
            import sys, torch
            from reference_models import make_module
            torch.manual_seed(3)
            model = make_module(dict(arch="resnet50-unet", encoder=dict(name="resnet50", in_channels=6)))
            torch.save(model.state_dict(), sys.argv[1])
            """, path("model_weights.pth")])
        XCTAssertEqual(made.status, 0, made.stderr)
        let settings = ["--bands"] + Self.bands + ["--chip-size", "64", "--gsf", "9.86"]
        let converted = try convert(["to-safetensors", path("model_weights.pth"), path("a.safetensors")] + settings)
        XCTAssertEqual(converted.status, 0, converted.stderr)
        let config = try Checkpoint.readConfig(path("a.safetensors"))
        XCTAssertEqual(config.arch, "resnet50-unet")
        XCTAssertEqual(config.encoder, EncoderConfig(name: "resnet50", inChannels: 6))
        let net = try makeNetwork(config, seed: nil)
        try Checkpoint.load(path("a.safetensors"), into: net)
        XCTAssertEqual(net.parameters.count, 32_530_513)   // smp.Unet("resnet50", in_channels=6, classes=1)

        let lightning = try convert(["to-lightning", path("a.safetensors"), path("a.ckpt")])
        XCTAssertEqual(lightning.status, 0, lightning.stderr)
        let back = try convert(["to-safetensors", path("a.ckpt"), path("b.safetensors")])
        XCTAssertEqual(back.status, 0, back.stderr)
        XCTAssertEqual(try Checkpoint.readConfig(path("b.safetensors")), config)
        let a = try SafeTensors(contentsOf: path("a.safetensors")), b = try SafeTensors(contentsOf: path("b.safetensors"))
        XCTAssertEqual(a.tensors.map(\.name), b.tensors.map(\.name))
        for name in ["encoder.layer1.0.conv3.weight", "encoder.layer4.2.bn3.running_var", "decoder.blocks.0.conv1.0.weight"] {
            XCTAssertEqual(try a.tensor(name).array, try b.tensor(name).array, name)
        }
    }

    private func write(_ values: [Float], to path: String) throws {
        try values.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: URL(fileURLWithPath: path))
    }

    private func pythonList(_ strings: [String]) -> String { "[" + strings.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
}
