import Foundation
import NN
import XCTest

/// One run per folder (a lock, and --overwrite to replace a finished run), stop signals during
/// validation, and a rank that fails mid-run ending the job with one error line.
extension TrainingTests {
    /// A second training on a folder in use is refused while the first goes on, whatever its flags.
    func testSecondTrainingOnALockedFolderIsRefused() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("lock") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, ["max_steps": 100_000, "samples_per_epoch": 600_000,
                                                                     "log_every": 100_000])
        let (first, _, _) = try TrainingRun.start(["train", "--config", config])
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        // config.json is written once the folder is locked, just before the first step.
        XCTAssertTrue(waitFor(out + "/config.json", while: first), "the first training did not start")
        for extra in [[], ["--resume"], ["--overwrite"]] {
            let second = try TrainingRun.run(["train", "--config", config] + extra)
            XCTAssertEqual(second.status, 1, "\(extra): \(second.stdout)\n\(second.stderr)")
            XCTAssertEqual(second.stderr.split(separator: "\n").count, 1, second.stderr)
            XCTAssertTrue(second.stderr.hasPrefix("deepdem: error: \(out): another deepdem train is running in this run folder"),
                          second.stderr)
        }
        XCTAssertTrue(first.isRunning, "the first training ended early")
        kill(first.processIdentifier, SIGTERM)
        first.waitUntilExit()
        XCTAssertEqual(first.terminationStatus, 75)
        // The lock went with the process.
        let stoppedAt = Int(try SafeTensors.header(of: out + "/last.safetensors").metadata["step"] ?? "") ?? 0
        let after = try TrainingRun.run(["train", "--config", config, "--resume", "--max-steps", "\(stoppedAt + 1)"])
        XCTAssertEqual(after.status, 0, after.stderr)
    }

    /// A folder that holds a run is refused without --resume; --overwrite replaces the run, files
    /// the new run does not write (step checkpoints) included; and no flag lets the run write onto
    /// its own inputs.
    func testTrainingOverAFinishedRunNeedsOverwrite() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("overwrite") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, ["max_steps": 2, "checkpoint_every": 1, "keep_last": 1])
        _ = try train(config, ranks: 0)
        let last = try Data(contentsOf: URL(fileURLWithPath: out + "/last.safetensors"))

        let again = try TrainingRun.run(["train", "--config", config])
        XCTAssertEqual(again.status, 1, again.stdout)
        XCTAssertEqual(again.stderr, "deepdem: error: \(out): already holds a run (pass --resume to continue it or --overwrite to replace it)\n")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/last.safetensors")), last, "the refused run changed the folder")

        let both = try TrainingRun.run(["train", "--config", config, "--resume", "--overwrite"])
        XCTAssertEqual(both.status, 1)
        XCTAssertTrue(both.stderr.contains("give one of them"), both.stderr)

        let initial = try TrainingRun.run(["train", "--config", config, "--overwrite", "--init", out + "/best.safetensors"])
        XCTAssertEqual(initial.status, 1)
        XCTAssertTrue(initial.stderr.contains("\(out)/best.safetensors: is an input of this command"), initial.stderr)

        _ = try train(config, ranks: 0, ["--overwrite", "--max-steps", "1", "--keep-last", "0"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/checkpoints"), "the earlier run's step checkpoints are left")
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.contains("train_loss") }.count, 1, lines.joined(separator: "\n"))
        XCTAssertEqual(try SafeTensors.header(of: out + "/last.safetensors").metadata["step"], "1")
    }

    /// SIGTERM to one rank during a long validation: every rank stops within seconds instead of
    /// after the validation, saves once, exits 75; the resumed run validates that step again and
    /// ends as an uninterrupted run does.
    func testSignalDuringValidationStopsWithinSeconds() throws {
        let scene = try TrainingRun.scene()
        let settings: [String: Any] = ["max_steps": 2, "samples_per_epoch": 6, "val_samples": 20_000, "log_every": 1]
        let straight = TrainingRun.folder("val-straight") + "/run"
        _ = try train(TrainingRun.config(scene: scene, out: straight, settings), ranks: 2)

        let out = TrainingRun.folder("val-stop") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, settings)
        let (p, outPipe, errPipe) = try TrainingRun.start(["train", "--config", config], ranks: 2)
        // The first step's line is written just before its validation starts.
        let ranks = ranksOnceWritten(out + "/metrics.jsonl", by: p)
        XCTAssertEqual(ranks.count, 2, "ranks not found")
        usleep(300_000)
        let t0 = Date()
        kill(ranks[1], SIGTERM)
        p.waitUntilExit()
        let seconds = Date().timeIntervalSince(t0)
        let stdout = String(decoding: outPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 75, "\(stdout)\n\(stderr)")
        XCTAssertLessThan(seconds, 3, "the ranks finished the validation before stopping")
        XCTAssertTrue(stdout.contains("stopped by signal \(SIGTERM) at step 1"), stdout)
        XCTAssertFalse(stdout.contains("validation:"), "the validation was not abandoned:\n\(stdout)")
        XCTAssertEqual(stdout.components(separatedBy: "checkpoint: step").count - 1, 1, "state saved more than once:\n\(stdout)")

        let resumed = try train(config, ranks: 2, ["--resume"])
        XCTAssertTrue(resumed.stdout.contains("validation: epoch 0 step 1"), resumed.stdout)
        for file in ["last.safetensors", "best.safetensors"] {
            XCTAssertEqual(try TrainingRun.weights(out + "/" + file), try TrainingRun.weights(straight + "/" + file), file)
            XCTAssertEqual(try SafeTensors.header(of: out + "/" + file).metadata, try SafeTensors.header(of: straight + "/" + file).metadata, file)
        }
        XCTAssertEqual(try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").count,
                       try String(contentsOfFile: straight + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").count)
    }

    /// Rank 0's disk fills up at a checkpoint under the launcher: every rank ends through
    /// MPI_Finalize, so the job exits 1 with the one error line and without the MPI_Abort report;
    /// with Open MPI's mpirun -q (its other notices off) the error line is all of stderr. Needs
    /// root's `mount`; skipped without.
    func testFullDiskUnderMPIRunIsOneLine() throws {
        let base = TrainingRun.folder("full")
        let full = base + "/full"
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        guard shell("mount -t tmpfs -o size=300k tmpfs \(full)") == 0 else { throw XCTSkip("cannot mount a tmpfs here") }
        defer { _ = shell("umount \(full)") }
        let scene = try TrainingRun.scene()
        if Launcher.isMPICH { print("testFullDiskUnderMPIRunIsOneLine: Hydra has no -q; its run without checks the error line") }
        for options in Launcher.isMPICH ? [[]] : [[], ["-q"]] {
            _ = shell("rm -rf \(full)/run")
            let config = try TrainingRun.config(scene: scene, out: full + "/run", ["max_steps": 4, "checkpoint_every": 2])
            let r = try TrainingRun.run(["train", "--config", config], ranks: 2, openMPIOptions: options)
            XCTAssertEqual(r.status, 1, "\(options): \(r.stdout)\n\(r.stderr)")
            let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem: error:") }
            XCTAssertEqual(errors.count, 1, r.stderr)
            XCTAssertTrue(errors.first?.contains("\(full)/run") ?? false, r.stderr)
            XCTAssertFalse(r.stderr.contains("MPI_ABORT"), r.stderr)
            if options == ["-q"] { XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr) }
        }
    }

    /// Waits up to 60 s for `file` while `process` runs.
    func waitFor(_ file: String, while process: Process) -> Bool {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, process.isRunning {
            if FileManager.default.fileExists(atPath: file) { return true }
            usleep(100_000)
        }
        return FileManager.default.fileExists(atPath: file)
    }

    func shell(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command + " 2>/dev/null"]
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
