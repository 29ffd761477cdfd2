import Foundation
import NN
import XCTest

/// One run per folder: a lock, and --overwrite to replace a finished run.
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

    /// Waits up to 60 s for `file` while `process` runs.
    func waitFor(_ file: String, while process: Process) -> Bool {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, process.isRunning {
            if FileManager.default.fileExists(atPath: file) { return true }
            usleep(100_000)
        }
        return FileManager.default.fileExists(atPath: file)
    }
}
