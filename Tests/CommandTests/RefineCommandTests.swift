import Data
import Foundation
import NN
import XCTest

/// `deepdem refine`: its default threads, bad arguments, and an output that cannot be written whole.
final class RefineCommandTests: XCTestCase {
    /// A disk that fills up halfway through the output (a 300 KB tmpfs for a ~1 MB GeoTIFF): one
    /// error line naming the output, exit 1, and no file left behind, neither the output nor its
    /// temporary, with GDAL compressing on several threads. Needs root's `mount`; skipped without.
    func testFullDiskLeavesNothingBehind() throws {
        let folder = NSTemporaryDirectory() + "refine-full-\(getpid())"
        let full = folder + "/full"
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        guard shell("mount -t tmpfs -o size=300k tmpfs \(full)") == 0 else { throw XCTSkip("cannot mount a tmpfs here") }
        defer { _ = shell("umount \(full)") }

        try makeModelAndScene(in: folder, size: 512)

        let out = full + "/refined.tif"
        let refine = try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                                     "--out", out, "--threads", "2"])
        XCTAssertEqual(refine.status, 1, refine.stderr)
        let lines = refine.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem:") }
        XCTAssertEqual(lines.count, 1, refine.stderr)
        XCTAssertTrue(lines.first?.contains("\(out): write failed") ?? false, refine.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: full), [], "left behind after the failure")
    }

    /// `--threads 0` used to run on one thread without a word; it is refused before any work.
    func testThreadsBelowOneAreRefused() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("refined.tif").path
        assertRefused(try runDeepDEM(["refine", "--checkpoint", folder.appendingPathComponent("none.safetensors").path,
                                      "--data", folder.path, "--out", out, "--threads", "0"]), "--threads 0: needs at least 1 thread")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// A checkpoint whose bands do not match its network's input channels crashed refine; it is
    /// refused with one line naming the checkpoint, before the scene is read.
    func testCheckpointThatCannotBeBuiltIsRefused() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let checkpoint = folder.appendingPathComponent("model.safetensors").path
        try writeBareCheckpoint(ModelConfig(arch: "unet", bands: ["asp_dsm", "ndvi"], chipSize: 64, gsf: 1,
                                            unet: UNetConfig(nInputChannels: 6, depth: 2, startKernel: 8)), to: checkpoint)
        let out = folder.appendingPathComponent("refined.tif").path
        assertRefused(try runDeepDEM(["refine", "--checkpoint", checkpoint, "--data", folder.path, "--out", out]),
                      "\(checkpoint): 'deepdem' metadata: 'unet.n_input_channels' is 6, but 'bands' lists 2")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// Without --threads, refine takes the cores it may run on (one, by taskset here, as a Slurm
    /// allocation or mpirun's binding would restrict it), not every core of the machine.
    func testDefaultThreadsFollowTheAffinity() throws {
        let taskset = "/usr/bin/taskset"
        guard FileManager.default.isExecutableFile(atPath: taskset) else { throw XCTSkip("no taskset") }
        guard ProcessInfo.processInfo.activeProcessorCount > 1 else { throw XCTSkip("one core: nothing to tell apart") }
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try makeModelAndScene(in: folder, size: 128)
        let refine = try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                                     "--out", folder + "/refined.tif"], launcher: [taskset, "-c", "0"])
        XCTAssertEqual(refine.status, 0, refine.stderr)
        XCTAssertTrue(refine.stdout.contains("× 1)"), "expected one thread: \(refine.stdout)")
    }

    /// A small unet checkpoint (chip 64) and a synthetic scene of size² pixels in `folder`.
    private func makeModelAndScene(in folder: String, size: Int) throws {
        let bands = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"]
        let config = ModelConfig(arch: "unet", bands: bands, chipSize: 64, gsf: 1,
                                 unet: UNetConfig(nInputChannels: bands.count, depth: 2, startKernel: 8, maxFilterDepth: 16))
        try Checkpoint.save(try makeNetwork(config, seed: 1), to: folder + "/model.safetensors")
        let synth = try runDeepDEM(["synth", "--out", folder + "/scene", "--size", "\(size)"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
    }

    private func shell(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command + " 2>/dev/null"]
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
