import Foundation
import NN
import XCTest

/// `deepdem train` under the real launcher of the build's MPI (Open MPI's mpirun or MPICH's
/// Hydra): N ranks equal one rank, resume equals uninterrupted, signals stop all ranks resumably,
/// a dead rank ends the job, bad configs fail early, the other MPI's launcher is refused.
final class TrainingTests: XCTestCase {
    func train(_ config: String, ranks: Int, _ extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws -> TrainingRun.Result {
        let r = try TrainingRun.run(["train", "--config", config] + extra, ranks: ranks)
        XCTAssertEqual(r.status, 0, "train failed:\n\(r.stdout)\n\(r.stderr)", file: file, line: line)
        return r
    }

    func testRanksTrainAsOne() throws {
        try checkRanksTrainAsOne([:])
    }

    /// With synchronized BatchNorm the statistics are those of the global batch on every rank, so
    /// a BatchNorm model also trains identically on 1, 2 and 3 ranks (running statistics included).
    func testRanksTrainAsOneWithSyncBatchNorm() throws {
        try checkRanksTrainAsOne(["unet": ["depth": 3, "start_kernel": 8, "max_filter_depth": 32, "do_BN": true],
                                  "sync_batchnorm": true])
    }

    /// Six steps on 1, 2 and 3 ranks agree within 1e-5 of each tensor's largest weight. N ranks sum
    /// their gradients in another order than one rank does, and Adam's normalized step turns such
    /// ulp-level differences in small gradients into fractions of the learning rate; at lr 1e-4 the
    /// bound measures the reduction order, not that amplification. A wrong normalizer or a rank
    /// training on the wrong chips still moves the weights by ~1e-3 of their size.
    func checkRanksTrainAsOne(_ extra: [String: Any], file: StaticString = #filePath, line: UInt = #line) throws {
        let extra = extra.merging(["lr": 1e-4]) { old, _ in old }
        let scene = try TrainingRun.scene()
        var results: [[String: [Float]]] = []
        for ranks in [1, 2, 3] {
            let out = TrainingRun.folder("ranks\(ranks)") + "/run"
            let r = try train(TrainingRun.config(scene: scene, out: out, extra), ranks: ranks)
            XCTAssertTrue(r.stdout.contains("\(ranks) rank"), r.stdout)
            results.append(try TrainingRun.weights(out + "/last.safetensors"))
        }
        // The steps moved the weights: equality above is not that of untouched initial weights.
        let out0 = TrainingRun.folder("ranks0") + "/run"
        _ = try train(TrainingRun.config(scene: scene, out: out0, extra.merging(["max_steps": 0]) { $1 }), ranks: 0)
        let initial = try TrainingRun.weights(out0 + "/last.safetensors")
        let moved = results[0].keys.filter { results[0][$0] != initial[$0] }
        XCTAssertGreaterThan(moved.count, results[0].count / 2, "training changed too few tensors")
        assertClose(results[1], results[0], tolerance: 1e-5, "2 ranks vs 1", file: file, line: line)
        assertClose(results[2], results[0], tolerance: 1e-5, "3 ranks vs 1", file: file, line: line)
    }
}

extension TrainingTests {
    /// 6 steps straight and 3 steps + --resume to 6 give identical weights, bit for bit.
    func testResumeEqualsUninterrupted() throws {
        let scene = try TrainingRun.scene()
        let straight = TrainingRun.folder("straight") + "/run"
        _ = try train(TrainingRun.config(scene: scene, out: straight), ranks: 2)
        let split = TrainingRun.folder("split") + "/run"
        let config = try TrainingRun.config(scene: scene, out: split, ["max_steps": 3])
        _ = try train(config, ranks: 2)
        let r = try train(config, ranks: 2, ["--resume", "--max-steps", "6"])
        XCTAssertTrue(r.stdout.contains("resuming at step 3"), r.stdout)
        XCTAssertEqual(try Checkpoint.readConfig(split + "/last.safetensors"), try Checkpoint.readConfig(straight + "/last.safetensors"),
                       "a resumed run's checkpoint describes a different model (gsf, bands…)")
        let a = try TrainingRun.weights(straight + "/last.safetensors"), b = try TrainingRun.weights(split + "/last.safetensors")
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        let differing = a.keys.filter { a[$0] != b[$0] }.sorted()
        XCTAssertTrue(differing.isEmpty, "resumed weights differ from the uninterrupted run's in \(differing.count) tensors, e.g. \(differing.prefix(3))")
        let lines = try String(contentsOfFile: split + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let steps = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["train_loss"] != nil ? $0 : nil }
        XCTAssertEqual(steps.count, 6, "one training line per step, none repeated:\n\(lines.joined(separator: "\n"))")
    }

    /// A requeued or resubmitted job lands on another allocation. 8 steps straight as one process
    /// of one thread; 4 steps the same way, then --resume as 2 ranks × 2 threads; 4 steps as 3 ranks,
    /// then --resume as one process: both end within the N-rank ≡ 1-rank tolerance (see
    /// checkRanksTrainAsOne), and a resume that changes only the threads ends bit for bit equal.
    func testResumeOnAnotherAllocation() throws {
        let scene = try TrainingRun.scene()
        let settings: [String: Any] = ["lr": 1e-4, "max_steps": 8]
        let straight = TrainingRun.folder("alloc-straight") + "/run"
        _ = try train(TrainingRun.config(scene: scene, out: straight, settings), ranks: 0)
        let reference = try TrainingRun.weights(straight + "/last.safetensors")

        let wider = TrainingRun.folder("alloc-wider") + "/run"
        let widerConfig = try TrainingRun.config(scene: scene, out: wider, settings)
        _ = try train(widerConfig, ranks: 0, ["--max-steps", "4"])
        let resumed = try train(widerConfig, ranks: 2, ["--resume", "--threads", "2"])
        XCTAssertTrue(resumed.stdout.contains("resuming at step 4"), resumed.stdout)
        XCTAssertTrue(resumed.stdout.contains("resumed on 2 ranks × 2 threads; was 1 rank × 1 thread"), resumed.stdout)
        XCTAssertTrue(resumed.stdout.contains("settings changed on resume: max_steps 4 → 8, threads 1 → 2"), resumed.stdout)
        assertClose(try TrainingRun.weights(wider + "/last.safetensors"), reference, tolerance: 1e-5, "1 rank, then 2 ranks × 2 threads")

        let narrower = TrainingRun.folder("alloc-narrower") + "/run"
        let narrowerConfig = try TrainingRun.config(scene: scene, out: narrower, settings)
        _ = try train(narrowerConfig, ranks: 3, ["--max-steps", "4"])
        let single = try train(narrowerConfig, ranks: 0, ["--resume"])
        XCTAssertTrue(single.stdout.contains("resumed on 1 rank × 1 thread; was 3 ranks × 1 thread"), single.stdout)
        assertClose(try TrainingRun.weights(narrower + "/last.safetensors"), reference, tolerance: 1e-5, "3 ranks, then 1")

        let threads = TrainingRun.folder("alloc-threads") + "/run"
        let threadsConfig = try TrainingRun.config(scene: scene, out: threads, settings)
        _ = try train(threadsConfig, ranks: 0, ["--max-steps", "4"])
        _ = try train(threadsConfig, ranks: 0, ["--resume", "--threads", "3", "--bucket-mb", "1", "--log-every", "2"])
        XCTAssertEqual(try TrainingRun.weights(threads + "/last.safetensors"), reference, "resumed on 3 threads: not the same bits")

        // More ranks than the global batch has chips: one line naming both, before any work.
        let crowded = try TrainingRun.run(["train", "--config", threadsConfig, "--resume", "--max-steps", "12"], ranks: 7)
        XCTAssertEqual(crowded.status, 1, crowded.stdout + crowded.stderr)
        XCTAssertTrue(crowded.stderr.contains("'batch_size' 6 is smaller than the 7 ranks"), crowded.stderr)
        XCTAssertEqual(crowded.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem: error:") }.count, 1, crowded.stderr)
    }

    /// Resume state is checked before it is used: a state file whose bytes changed, a latest.json
    /// with impossible values or a file name outside the state folder, Adam moments no training
    /// gives. Each is one line naming the file, exit 1; the untouched state then resumes.
    func testDamagedResumeStateIsRefused() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("damaged") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, ["max_steps": 2])
        _ = try train(config, ranks: 0)
        let state = out + "/state", latestPath = state + "/latest.json"
        let latest = try Data(contentsOf: URL(fileURLWithPath: latestPath))
        let object = try JSONSerialization.jsonObject(with: latest) as! [String: Any]
        let weights = state + "/" + (object["weights"] as! String), moments = state + "/" + (object["optimizer"] as! String)
        func resume() throws -> TrainingRun.Result { try TrainingRun.run(["train", "--config", config, "--resume", "--max-steps", "3"]) }
        func refused(_ phrase: String, _ what: String) throws {
            let r = try resume()
            XCTAssertEqual(r.status, 1, "\(what): \(r.stdout)\(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(what): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("deepdem: error: ") && r.stderr.contains(phrase), "\(what): \(r.stderr)")
        }
        func edited(_ path: String, _ change: (inout Data) -> Void, _ body: () throws -> Void) throws {
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            var data = original
            change(&data)
            try data.write(to: URL(fileURLWithPath: path))
            defer { try? original.write(to: URL(fileURLWithPath: path)) }
            try body()
        }
        // A few bytes of the weights' or the moments' data replaced: the checksum tells.
        for file in [weights, moments] {
            try edited(file, { data in for i in 0..<8 { data[data.count - 100 + i] ^= 0x5a } }) {
                try refused("\(file): damaged: its SHA-256", "bytes changed in \(file)")
            }
        }
        for (key, value, phrase) in [("step", -5 as Any, "damaged resume state: step -5"), ("weights", "../../config.json" as Any, "state files")] {
            try edited(latestPath, { data in
                var o = object
                o[key] = value
                data = try! JSONSerialization.data(withJSONObject: o)
            }) { try refused(phrase, "latest.json with \(key) \(value)") }
        }
        try edited(latestPath, { data in
            var o = object, trainer = o["trainer"] as! [String: Any]
            trainer["gsf"] = 0
            o["trainer"] = trainer
            data = try! JSONSerialization.data(withJSONObject: o)
        }) { try refused("gsf 0.0: it must be a positive number", "latest.json with gsf 0") }
        // Moments no training gives, with a checksum that matches them: the values tell.
        let saved = try OptimizerState.read(moments)
        try edited(moments, { _ in }) {
            var bad = saved.state
            bad.buffers["exp_avg_sq"]![0] = -1
            try bad.write(to: moments)
            var o = object, digests = o["sha256"] as! [String: String]
            digests[(o["optimizer"] as! String)] = try SHA256.hex(ofFile: moments)
            o["sha256"] = digests
            try edited(latestPath, { data in data = try! JSONSerialization.data(withJSONObject: o) }) {
                try refused("\(moments): Adam's moments", "a negative second moment")
            }
        }
        let r = try resume()
        XCTAssertEqual(r.status, 0, "the restored state does not resume: \(r.stderr)")
    }

    /// A resume whose settings differ in more than the run length is refused, naming the keys.
    func testResumeWithOtherSettingsIsRefused() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("mismatch") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, ["max_steps": 1])
        _ = try train(config, ranks: 0)
        let r = try TrainingRun.run(["train", "--config", config, "--resume", "--lr", "0.1", "--max-steps", "2"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("settings for: lr ") && r.stderr.hasPrefix("deepdem: error:"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        let ok = try TrainingRun.run(["train", "--config", config, "--resume", "--resume-anyway", "--lr", "0.1", "--max-steps", "2"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("settings changed on resume (--resume-anyway): lr 0.001 → 0.1, max_steps 1 → 2"), ok.stdout)
        // The changed rate is the one the resumed steps train with, not the saved one.
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let step2 = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .first { $0["step"] as? Int == 2 && $0["train_loss"] != nil }
        XCTAssertEqual(step2?["lr"] as? Double, 0.1, lines.joined(separator: "\n"))
    }

    /// SIGUSR1 to one rank: every rank stops at the next step with the resumable code after a
    /// checkpoint, and --resume finishes the run with the weights of an uninterrupted one.
    func testSignalStopsAllRanksResumably() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("signal") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, ["max_steps": 4000, "samples_per_epoch": 6000])
        let (p, outPipe, errPipe) = try TrainingRun.start(["train", "--config", config], ranks: 2)
        // Signal one rank (not mpirun) once training is under way.
        let ranks = ranksOnceWritten(out + "/metrics.jsonl", by: p)
        XCTAssertEqual(ranks.count, 2, "ranks not found")
        kill(ranks[1], SIGUSR1)
        let t0 = Date()
        p.waitUntilExit()
        let stdout = String(decoding: outPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 75, "\(stdout)\n\(stderr)")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 30)
        XCTAssertTrue(stdout.contains("stopped by signal"), stdout)
        let stoppedAt = try TrainingRun.weights(out + "/last.safetensors")
        XCTAssertFalse(stoppedAt.isEmpty)
        let r = try train(config, ranks: 2, ["--resume", "--max-steps", "\(try lastStep(out) + 2)"])
        XCTAssertTrue(r.stdout.contains("resuming at step"), r.stdout)
    }

    /// SIGKILL to one rank: the job ends non-zero within 60 s and the last checkpoint still loads.
    func testKilledRankEndsTheJob() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("kill") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, ["max_steps": 4000, "samples_per_epoch": 6000,
                                                                     "checkpoint_every": 2])
        let (p, _, _) = try TrainingRun.start(["train", "--config", config], ranks: 2)
        let ranks = ranksOnceWritten(out + "/last.safetensors", by: p)
        XCTAssertEqual(ranks.count, 2, "ranks not found")
        kill(ranks[1], SIGKILL)
        let t0 = Date()
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 60)
        XCTAssertFalse(try TrainingRun.weights(out + "/last.safetensors").isEmpty)
    }

    /// Bad configurations: one line on stderr naming the problem, exit 1, before training.
    func testBadConfigurations() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("bad") + "/run"
        let cases: [([String: Any], String, Int)] = [
            (["batch_sizes": 4], "unknown key 'batch_sizes'", 0),
            (["batch_size": "four"], "'batch_size' must be an integer", 0),
            (["data": out + "/nowhere"], "no such scene folder", 2),
            (["batch_size": 2], "smaller than the 3 ranks", 3),
            (["arch": "vgg"], "'arch' is 'vgg'", 0),
            (["threads": 0], "'threads' is 0; it must be between 1 and 1024", 0),
            (["train_split": 1.0], "'train_split' is 1.0; it must be in (0, 1)", 0),
            // Settings that crashed train (overflowing step counts, divisions by zero, a network
            // no memory holds) are refused by the same checks as a checkpoint's metadata.
            (["samples_per_epoch": 1_000_000_000_000_000_000], "'samples_per_epoch' is 1000000000000000000; it must be between 1 and 1000000000", 0),
            (["unet": ["depth": 70]], "'unet.depth' is 70; it must be between 1 and 12", 0),
            (["unet": ["start_kernel": 100_000_000, "max_filter_depth": 100_000_000]], "'unet.start_kernel' is 100000000", 0),
            (["unet": ["depth": 3, "max_filter_depth": -1]], "'unet.max_filter_depth' is -1", 0),
            (["chip_size": 33], "'chip_size' is 33; a 'unet' model needs a multiple of 8", 0),
            (["arch": "resnet18-unet", "decoder_channels": [256, 128, 64, 32, -16]], "'decoder_channels.4' is -16", 0),
            (["val_every": 0], "'val_every' is 0; it must be positive", 0),
            (["lr_scheduler": ["kind": "step", "step_size": 0]], "'lr_scheduler.step_size' is 0; it must be positive", 0),
        ]
        try assertRefusedBeforeTraining(scene: scene, out: out, cases)
        let r = try TrainingRun.run(["train", "--config", TrainingRun.config(scene: scene, out: out), "--max-stepz", "3"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("unknown option '--max-stepz'"), r.stderr)
    }

    /// A build started by the other MPI's launcher: each rank would initialize as a singleton and
    /// train a model of its own. Instead the job ends at once with one line naming the MPI the
    /// build is for and the launcher (MPICH's build under Open MPI's mpirun, or Open MPI's under
    /// MPICH's mpiexec: `make test` runs this once per build).
    func testWrongLauncherIsOneErrorLine() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("wrong-launcher") + "/run"
        let r = try TrainingRun.run(Launcher.command(ranks: 2, mpich: !Launcher.isMPICH),
                                    ["train", "--config", TrainingRun.config(scene: scene, out: out)])
        XCTAssertEqual(r.status, 1, "\(r.stdout)\n\(r.stderr)")
        XCTAssertLessThan(r.seconds, 30)
        let (built, launcher, variable, fix) = Launcher.isMPICH
            ? ("MPICH", "Open MPI's mpirun", "OMPI_COMM_WORLD_SIZE=2", "make build MPI=openmpi")
            : ("Open MPI", "a PMI launcher", "PMI_SIZE=2", "make build MPI=mpich")
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem: error:") }
        XCTAssertEqual(errors.count, 1, r.stderr)
        let line = errors.first.map(String.init) ?? ""
        XCTAssertTrue(line.hasPrefix("deepdem: error: this deepdem was built for \(built) "), line)
        for part in ["started by \(launcher)", variable, fix] { XCTAssertTrue(line.contains(part), "\(part) missing: \(line)") }
        XCTAssertFalse(r.stdout.contains("deepdem train:"), "a rank trained anyway:\n\(r.stdout)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a rank made the run folder")
    }

    func lastStep(_ out: String) throws -> Int {
        let text = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["step"] as? Int
        }.max() ?? 0
    }

    /// The launcher's two deepdem ranks, once `file` exists (so training is under way); waits up to 60 s.
    func ranksOnceWritten(_ file: String, by launcher: Process) -> [Int32] {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: file) {
                let ranks = Launcher.ranks(of: launcher.processIdentifier)
                if ranks.count == 2 { return ranks }
            }
            usleep(100_000)
        }
        return []
    }
}

extension TrainingTests {
    /// A loss that becomes infinite or NaN stops every rank with exit code 3; the last checkpoint
    /// on disk is the last good one (finite weights).
    func testDivergenceStopsAndKeepsTheLastGoodCheckpoint() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("diverge") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, ["lr": 1e30, "checkpoint_every": 1, "max_steps": 50])
        let r = try TrainingRun.run(["train", "--config", config], ranks: 2)
        XCTAssertEqual(r.status, 3, "\(r.stdout)\n\(r.stderr)")
        XCTAssertTrue(r.stdout.contains("diverged"), r.stdout)
        let weights = try TrainingRun.weights(out + "/last.safetensors")
        XCTAssertTrue(weights.values.allSatisfy { $0.allSatisfy(\.isFinite) }, "the kept checkpoint has non-finite weights")
    }

    /// A rate past Float's range turns the weights infinite in one step whose loss was finite: the
    /// checkpoint after it is not written, the run stops as diverged, and the state of the last
    /// good step still resumes.
    func testWeightsThatOverflowAreNeverSaved() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("overflow") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, ["checkpoint_every": 1, "max_steps": 2])
        _ = try train(config, ranks: 0)
        let good = try TrainingRun.weights(out + "/last.safetensors")
        let r = try TrainingRun.run(["train", "--config", config, "--resume", "--resume-anyway", "--lr", "1e39", "--max-steps", "4"], ranks: 2)
        XCTAssertEqual(r.status, 3, "\(r.stdout)\n\(r.stderr)")
        XCTAssertTrue(r.stdout.contains("weights are not finite after step 3"), r.stdout)
        XCTAssertEqual(try TrainingRun.weights(out + "/last.safetensors"), good, "a checkpoint replaced the last good one")
        let again = try TrainingRun.run(["train", "--config", config, "--resume", "--resume-anyway", "--lr", "1e-3", "--max-steps", "3"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("resuming at step 2"), again.stdout)
    }
}

extension TrainingTests {
    /// keep_last keeps the K latest step checkpoints; the run folder holds what the README lists.
    func testRunFolderContents() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("folder") + "/run"
        _ = try train(TrainingRun.config(scene: scene, out: out, ["checkpoint_every": 1, "keep_last": 2, "max_steps": 4]), ranks: 0)
        let kept = try FileManager.default.contentsOfDirectory(atPath: out + "/checkpoints").sorted()
        XCTAssertEqual(kept, ["step-000000003.safetensors", "step-000000004.safetensors"])
        for file in ["last.safetensors", "best.safetensors", "config.json", "metrics.jsonl", "loss.svg", "state/latest.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(objects.count, lines.count, "every metrics line is JSON")
        XCTAssertTrue(objects.contains { Set($0.keys) == ["step", "epoch", "train_loss", "lr", "tiles_per_s"] })
        XCTAssertTrue(objects.contains { Set($0.keys) == ["step", "epoch", "val_loss"] })
    }

    /// `lr_scheduler: {kind: step}` is StepLR, whose rates ScheduleTests compares with PyTorch's:
    /// as in Lightning it steps at every epoch's end and multiplies the current rate, so after
    /// step_size epochs the rate is lr·gamma. (Before StepLR was used here, the trainer computed
    /// lr·gamma^⌊(epoch − 1)/step_size⌋ from the base rate: one epoch late, and off in the last
    /// bit after several drops.) A resumed run continues the schedule where it stopped.
    func testStepScheduleIsStepLR() throws {
        let scene = try TrainingRun.scene()
        let settings: [String: Any] = ["samples_per_epoch": 6, "val_samples": 6, "max_steps": 7,
                                       "lr_scheduler": ["kind": "step", "step_size": 2, "gamma": 0.5]]
        func rates(_ out: String) throws -> [Double] {
            try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["lr"] as? Double
            }
        }
        let straight = TrainingRun.folder("steplr") + "/run"
        _ = try train(TrainingRun.config(scene: scene, out: straight, settings), ranks: 0)
        var schedule = StepLR(stepSize: 2, gamma: 0.5)
        var lr = 1e-3, expected: [Double] = []
        for _ in 0..<7 {   // one step per epoch: each training line's rate is the epoch's
            expected.append(lr)
            lr = schedule.step(lr: lr)
        }
        XCTAssertEqual(try rates(straight), expected)

        let split = TrainingRun.folder("steplr-split") + "/run"
        let config = try TrainingRun.config(scene: scene, out: split, settings.merging(["max_steps": 3]) { $1 })
        _ = try train(config, ranks: 0)
        _ = try train(config, ranks: 0, ["--resume", "--max-steps", "7"])
        XCTAssertEqual(try rates(split), expected, "a resumed run's schedule")
    }
}
