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

    private func shell(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command + " 2>/dev/null"]
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
