import Data
import Foundation
import NN
import XCTest

/// `deepdem refine --tta [--uncertainty σ.tif]`: predictions under the symmetries of the square,
/// each mapped back, averaged; their standard deviation as a raster.
final class TTATests: XCTestCase {
    static let bands = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"]

    /// A unet (chip 64) whose every kernel is invariant under the 8 symmetries of the square (each
    /// k×k patch replaced by its average over them, computed here by index arithmetic) and whose
    /// first layer weighs the two orthos alike: exactly equivariant, so TTA changes nothing.
    static func writeModel(_ path: String, equivariant: Bool) throws {
        let config = ModelConfig(arch: "unet", bands: Self.bands, chipSize: 64, gsf: 2,
                                 unet: UNetConfig(nInputChannels: Self.bands.count, depth: 2, startKernel: 8, maxFilterDepth: 16))
        let network = try makeNetwork(config, seed: 4)
        if equivariant {
            for (name, p) in zip(network.parameters.names, network.parameters.parameters) where p.shape.count == 4 {
                let (o, i, k) = (p.shape[0], p.shape[1], p.shape[2])
                let w = p.value.data
                for a in 0..<o {
                    for b in 0..<i {
                        let base = (a * i + b) * k * k
                        let patch = (0..<k * k).map { w[base + $0] }
                        for y in 0..<k {
                            for x in 0..<k {
                                // The orbit of (y, x): four rotations, each with and without a transpose.
                                var sum: Float = 0
                                for (yy, xx) in [(y, x), (x, k - 1 - y), (k - 1 - y, k - 1 - x), (k - 1 - x, y),
                                                 (x, y), (k - 1 - y, x), (k - 1 - x, k - 1 - y), (y, k - 1 - x)] {
                                    sum += patch[yy * k + xx]
                                }
                                w[base + y * k + x] = sum / 8
                            }
                        }
                    }
                }
                if name == "encoder.0.0.0.weight" {   // the orthos are input channels 1 and 2
                    for a in 0..<o {
                        for t in 0..<(k * k) {
                            let one = (a * i + 1) * k * k + t, two = (a * i + 2) * k * k + t
                            let mean = (w[one] + w[two]) / 2
                            w[one] = mean; w[two] = mean
                        }
                    }
                }
            }
        }
        try Checkpoint.save(network, to: path)
    }

    func refine(_ folder: String, _ extra: [String], out: String) throws {
        let r = try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene", "--out", out] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// An equivariant model: TTA gives the plain prediction and σ ≈ 0 (float32 summation order
    /// only). An ordinary one: TTA moves heights and σ is positive. Heights are ~100 m.
    func testEquivariantModelGivesThePlainPrediction() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        XCTAssertEqual(try runDeepDEM(["synth", "--out", folder + "/scene", "--size", "128"]).status, 0)
        for equivariant in [true, false] {
            try Self.writeModel(folder + "/model.safetensors", equivariant: equivariant)
            try refine(folder, ["--overwrite"], out: folder + "/plain.tif")
            try refine(folder, ["--tta", "--uncertainty", folder + "/sigma.tif", "--overwrite"], out: folder + "/tta.tif")
            let plain = try Raster(path: folder + "/plain.tif").readAll(), tta = try Raster(path: folder + "/tta.tif").readAll()
            let sigma = try Raster(path: folder + "/sigma.tif").readAll()
            XCTAssertEqual(plain.map(\.isNaN), sigma.map(\.isNaN), "σ has the DSM's nodata")
            let valid = sigma.filter { !$0.isNaN }
            if equivariant {
                XCTAssertLessThan(maxDifference(plain, tta), 1e-3)
                XCTAssertLessThan(valid.max()!, 1e-3)
            } else {
                XCTAssertGreaterThan(maxDifference(plain, tta), 0.01, "a random model is not equivariant")
                XCTAssertGreaterThan(valid.reduce(0, +) / Float(valid.count), 0.01)
                XCTAssertTrue(valid.allSatisfy { $0 >= 0 })
            }
        }
        let items = try Provenance.read(folder + "/sigma.tif")
        XCTAssertEqual(items["DEEPDEM_TTA"], "16 predictions per tile (symmetries of the square × both ortho orders)")
    }

    /// The mean and σ are the same bytes at 1 and 2 threads.
    func testTTAIsBitIdenticalAcrossThreads() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        XCTAssertEqual(try runDeepDEM(["synth", "--out", folder + "/scene", "--size", "96"]).status, 0)
        try Self.writeModel(folder + "/model.safetensors", equivariant: false)
        for threads in ["1", "2"] {
            try refine(folder, ["--tta", "--uncertainty", folder + "/sigma\(threads).tif", "--threads", threads, "--stride", "16"],
                       out: folder + "/tta\(threads).tif")
        }
        for name in ["tta", "sigma"] {
            // Bit patterns: NaN (nodata) is not equal to itself.
            XCTAssertEqual(try Raster(path: folder + "/\(name)1.tif").readAll().map(\.bitPattern),
                           try Raster(path: folder + "/\(name)2.tif").readAll().map(\.bitPattern), name)
        }
        assertRefused(try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                                      "--out", folder + "/x.tif", "--uncertainty", folder + "/s.tif"]),
                      "--uncertainty is the spread of --tta's predictions: give --tta too")
        assertRefused(try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                                      "--out", folder + "/x.tif", "--tta", "--uncertainty", folder + "/x.tif"]), "is also --out")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/x.tif"))
    }
}

extension TTATests {
    /// A model trained briefly on a synthetic scene like the demo's: its TTA σ ranks the held-out
    /// error (Spearman ρ clearly positive, the top σ quintile's MAE above the bottom one's), and
    /// `evaluate --sigma` reports it in the table, the JSON and the report.
    func testSigmaRanksTheHeldOutError() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        XCTAssertEqual(try runDeepDEM(["synth", "--out", folder + "/scene", "--size", "256", "--seed", "2"]).status, 0)
        let config = folder + "/train.yaml"
        try """
            data: [\(folder)/scene]
            train_split: 0.75
            arch: unet
            unet: {depth: 3, start_kernel: 8, max_filter_depth: 32}
            chip_size: 64
            batch_size: 8
            max_steps: 150
            lr: 0.002
            samples_per_epoch: 400
            val_samples: 16
            out: \(folder)/run
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let train = try runDeepDEM(["train", "--config", config])
        XCTAssertEqual(train.status, 0, train.stderr)
        let r = try runDeepDEM(["refine", "--checkpoint", folder + "/run/best.safetensors", "--data", folder + "/scene",
                                "--out", folder + "/tta.tif", "--tta", "--uncertainty", folder + "/sigma.tif"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let evaluate = ["evaluate", "--prediction", folder + "/tta.tif", "--truth", folder + "/scene/final_lidar_data.tif",
                        "--region", "right:0.25", "--sigma", folder + "/sigma.tif"]
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try runDeepDEM(evaluate + ["--json"]).stdout.utf8)) as? [String: Any])
        let check = try XCTUnwrap(json["uncertainty"] as? [String: Any])
        let rho = try XCTUnwrap(check["spearman"] as? Double)
        XCTAssertGreaterThan(rho, 0.3, "σ should rank the error")
        let quintiles = try XCTUnwrap(check["quintiles"] as? [[String: Double]])
        XCTAssertEqual(quintiles.count, 5)
        XCTAssertGreaterThan(try XCTUnwrap(quintiles[4]["mae"]), 2 * (try XCTUnwrap(quintiles[0]["mae"])))
        let table = try runDeepDEM(evaluate + ["--report", folder + "/report.md"])
        XCTAssertTrue(table.stdout.contains("uncertainty: Spearman ρ(σ, |error|)"), table.stdout)
        XCTAssertTrue(try String(contentsOfFile: folder + "/report.md", encoding: .utf8).contains("## Uncertainty"))
        let other = folder + "/other.tif"
        XCTAssertEqual(try runProcess("/usr/bin/env", ["gdal_translate", "-q", "-srcwin", "0", "0", "100", "100", folder + "/sigma.tif", other]).status, 0)
        assertRefused(try runDeepDEM(Array(evaluate.dropLast()) + [other]), "\(other): grid differs from the truth")
    }
}
