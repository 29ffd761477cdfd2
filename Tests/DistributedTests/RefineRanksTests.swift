import Data
import Distributed
import Foundation
import NN
import XCTest

/// `mpirun -np N deepdem refine …`: the ranks share the rows of tiles and rank 0 writes a file
/// byte for byte the one process writes.
final class RefineRanksTests: XCTestCase {
    /// Plain and with --tta/--uncertainty, at 2 and 3 ranks (rows dealt unevenly), against one
    /// process with the same arguments (so the provenance tags agree too); a byte comparison.
    func testRanksRefineAsOne() throws {
        let folder = TrainingRun.folder("refine-ranks")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let scene = try TrainingRun.scene(size: 160)
        let bands = Scene.bandsPresent(in: scene).filter { !Band.targets.contains($0) }.sorted()
        let config = ModelConfig(arch: "unet", bands: bands, chipSize: 32, gsf: 2,
                                 unet: UNetConfig(nInputChannels: bands.count, depth: 2, startKernel: 8, maxFilterDepth: 16))
        let checkpoint = folder + "/model.safetensors"
        try Checkpoint.save(try makeNetwork(config, seed: 3), to: checkpoint)
        let out = folder + "/out.tif", sigma = folder + "/sigma.tif"
        for extra in [[], ["--tta", "--uncertainty", sigma]] {
            let args = ["refine", "--checkpoint", checkpoint, "--data", scene, "--out", out, "--stride", "12", "--threads", "1",
                        "--overwrite"] + extra
            let one = try TrainingRun.run(args)
            XCTAssertEqual(one.status, 0, one.stderr)
            let expected = try [out, sigma].prefix(extra.isEmpty ? 1 : 2).map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
            for ranks in [2, 3] {
                let many = try TrainingRun.run(args, ranks: ranks)
                XCTAssertEqual(many.status, 0, many.stderr)
                XCTAssertTrue(many.stdout.contains("× \(ranks) ranks"), many.stdout)
                XCTAssertEqual(many.stdout.components(separatedBy: "refined ").count, 2, "one rank reports:\n\(many.stdout)")
                for (k, path) in [out, sigma].prefix(expected.count).enumerated() {
                    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), expected[k],
                                   "\(path) at \(ranks) ranks \(extra) differs from one process's")
                }
            }
        }
    }

    /// More ranks than rows of tiles: one error line (rank 0's), exit 1, nothing written.
    func testMoreRanksThanRowsIsOneLine() throws {
        let folder = TrainingRun.folder("refine-ranks-many")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let scene = try TrainingRun.scene(size: 160)
        let bands = Scene.bandsPresent(in: scene).filter { !Band.targets.contains($0) }.sorted()
        let config = ModelConfig(arch: "unet", bands: bands, chipSize: 128, gsf: 2,
                                 unet: UNetConfig(nInputChannels: bands.count, depth: 2, startKernel: 4, maxFilterDepth: 8))
        try Checkpoint.save(try makeNetwork(config, seed: 3), to: folder + "/model.safetensors")
        let r = try TrainingRun.run(["refine", "--checkpoint", folder + "/model.safetensors", "--data", scene, "--out", folder + "/o.tif"], ranks: 3)
        XCTAssertNotEqual(r.status, 0)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem: error:") }
        XCTAssertEqual(errors, ["deepdem: error: 3 ranks for 2 rows of tiles of \(scene): every rank needs a row; run at most 2"], r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/o.tif"))
    }
}
