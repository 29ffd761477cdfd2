import Data
import Foundation
import NN
import XCTest

/// slurm/*.sbatch on a real Slurm: each test starts a throwaway two-node cluster on this host
/// (Tests/Slurm/cluster.sh, root), submits the scripts as a user would with the built
/// `deepdem`, and stops the cluster afterwards. A cluster that cannot start fails the test
/// with the daemons' logs.
final class SlurmTests: XCTestCase {
    private static let repo = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    private static let maxSteps = 120
    private var cluster = ""
    private var work = ""

    override func setUpWithError() throws {
        let up = try shell(["\(Self.repo)/Tests/Slurm/cluster.sh", "up", "--nodes", "2"])
        guard up.status == 0, let dir = up.stdout.split(separator: "\n").last.map(String.init) else {
            throw Failure("the Slurm cluster did not start:\n\(up.stderr)")
        }
        cluster = dir
        work = "\(dir)/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        guard !cluster.isEmpty else { return }
        let failed = (testRun?.failureCount ?? 0) > 0
        if failed { print(try shell(["\(Self.repo)/Tests/Slurm/cluster.sh", "logs", cluster]).stderr) }
        // A failed test keeps the cluster's folder (job outputs, run folders) to look at.
        let down = try shell(["\(Self.repo)/Tests/Slurm/cluster.sh", "down", cluster],
                             extraEnvironment: failed ? ["KEEP": "1"] : [:])
        XCTAssertEqual(down.status, 0, down.stderr)
    }

    /// Two nodes × one rank: an uninterrupted run; a run that gets Slurm's time-limit warning
    /// mid-training, checkpoints, requeues itself and resumes to the same checkpoint; then
    /// refinement of the scene with the result, as one job and as a job array.
    func testTrainOnTwoNodesRequeueAndRefine() throws {
        try writeScene()
        let plain = try submit(train(output: "plain"))
        let plainJob = try waitForEnd(plain, output: "\(work)/plain.out")
        let plainOutput = try text("\(work)/plain.out")
        XCTAssertEqual(plainJob["JobState"], "COMPLETED", plainOutput)
        XCTAssertEqual(plainJob["Restarts"], "0")
        for node in ["node1", "node2"] {
            XCTAssertTrue(try text("\(cluster)/log/slurmd-\(node).log").contains("launch task StepId=\(plain).0 "),
                          "no rank of job \(plain) ran on \(node)")
        }
        XCTAssertEqual(occurrences(of: "deepdem train: 2 ranks", in: plainOutput), 1,
                       "the output should hold rank 0's lines only:\n\(plainOutput)")
        XCTAssertTrue(plainOutput.contains("done: reached max_steps at step \(Self.maxSteps)"), plainOutput)
        let metrics = try text("\(work)/plain/metrics.jsonl")
        XCTAssertTrue(metrics.contains("\"train_loss\"") && metrics.contains("\"val_loss\""), metrics)
        XCTAssertEqual(try text("\(work)/plain/slurm-\(plain).log"), plainOutput, "the run folder's log differs from the output")

        try requeueAndResume(output: "requeued", sameAs: "plain")

        // A job stopped by the same warning that cannot requeue itself, resubmitted with 2 CPUs
        // per task instead of 1, resumes and ends with the uninterrupted run's weights, bit for bit
        // (a change of ranks, which moves the weights within a tolerance, is TrainingTests').
        let stopped = try submit(["--no-requeue"] + train(output: "moved"))
        let (stoppedJob, stoppedOutput) = try scancelOnceTraining(stopped, output: "moved", ["--signal=USR1", "--batch"])
        XCTAssertEqual(stoppedJob["ExitCode"], "75:0", stoppedOutput)
        let moved = try submit(train(output: "moved", cpus: 2))
        let movedJob = try waitForEnd(moved, output: "\(work)/moved.out")
        let movedOutput = try text("\(work)/moved.out")
        XCTAssertEqual(movedJob["JobState"], "COMPLETED", movedOutput)
        XCTAssertTrue(movedOutput.contains("resumed on 2 ranks × 2 threads; was 2 ranks × 1 thread"), movedOutput)
        XCTAssertTrue(movedOutput.contains("done: reached max_steps at step \(Self.maxSteps)"), movedOutput)
        XCTAssertEqual(try TrainingRun.weights("\(work)/moved/last.safetensors"), try TrainingRun.weights("\(work)/plain/last.safetensors"),
                       "resubmitted with 2 CPUs per task: other weights")

        let refine = try submit(["--output=\(work)/refine.out", "\(Self.repo)/slurm/refine.sbatch",
                                 "\(work)/requeued/best.safetensors", "\(work)/scene", "\(work)/refined.tif"])
        let refineJob = try waitForEnd(refine, output: "\(work)/refine.out")
        XCTAssertEqual(refineJob["JobState"], "COMPLETED", (try? text("\(work)/refine.out")) ?? "")
        let errors = try evaluate("\(work)/refined.tif")
        XCTAssertLessThan(errors.refined, errors.initial, "refinement made the DSM worse (mean absolute error, m)")

        // The same scene over both nodes, one rank each: the pixels of the one-node job, bit for bit.
        let wide = try submit(["--nodes=2", "--output=\(work)/refine2.out", "\(Self.repo)/slurm/refine.sbatch",
                               "\(work)/requeued/best.safetensors", "\(work)/scene", "\(work)/refined2.tif"])
        let wideJob = try waitForEnd(wide, output: "\(work)/refine2.out")
        let wideOutput = (try? text("\(work)/refine2.out")) ?? ""
        XCTAssertEqual(wideJob["JobState"], "COMPLETED", wideOutput)
        XCTAssertTrue(wideOutput.contains("× 2 ranks"), wideOutput)
        for node in ["node1", "node2"] {
            XCTAssertTrue(try text("\(cluster)/log/slurmd-\(node).log").contains("launch task StepId=\(wide).0 "),
                          "no rank of refinement job \(wide) ran on \(node)")
        }
        XCTAssertEqual(try Raster(path: "\(work)/refined2.tif").readAll().map(\.bitPattern),
                       try Raster(path: "\(work)/refined.tif").readAll().map(\.bitPattern), "two nodes refined differently from one")

        // The array: the same scene under two names, two tasks.
        try FileManager.default.createSymbolicLink(atPath: "\(work)/scene_b", withDestinationPath: "\(work)/scene")
        try "# scenes\n\(work)/scene\n\n\(work)/scene_b\n".write(toFile: "\(work)/scenes.txt", atomically: true, encoding: .utf8)
        let array = try submit(["--array=1-2", "--cpus-per-task=1", "--output=\(work)/array-%a.out",
                                "\(Self.repo)/slurm/refine_array.sbatch", "\(work)/requeued/best.safetensors",
                                "\(work)/scenes.txt", "\(work)/array"])
        for (task, name) in [(1, "scene"), (2, "scene_b")] {
            let taskJob = try waitForEnd("\(array)_\(task)", output: "\(work)/array-\(task).out")
            XCTAssertEqual(taskJob["JobState"], "COMPLETED", (try? text("\(work)/array-\(task).out")) ?? "")
            XCTAssertEqual(try evaluate("\(work)/array/\(name).tif").refined, errors.refined, accuracy: 1e-9,
                           "array task \(task) refined differently")
        }
    }

    /// An MPICH build under each of its launchers, srun --mpi=pmi2 and Hydra's mpiexec inside the
    /// allocation: an uninterrupted run, then runs that get the time-limit warning, requeue and
    /// resume to the same checkpoints. (The Open MPI build's runs are the test above's; `make
    /// test` runs this one from the MPICH build.)
    func testMPICHRequeueAndResumeUnderSrunAndMpiexec() throws {
        guard Launcher.isMPICH else { throw XCTSkip("needs an MPICH build (make test runs it from .build-mpich)") }
        try writeScene()
        let plain = try submit(train(output: "plain"))
        let plainJob = try waitForEnd(plain, output: "\(work)/plain.out")
        let plainOutput = try text("\(work)/plain.out")
        XCTAssertEqual(plainJob["JobState"], "COMPLETED", plainOutput)
        XCTAssertTrue(plainOutput.contains("MPI library: MPICH"), "the start line does not name MPICH:\n\(plainOutput)")
        for launcher in ["srun", "mpiexec"] {
            try requeueAndResume(output: launcher, sameAs: "plain", extraEnvironment: ["DEEPDEM_LAUNCHER": launcher])
        }
        // srun with Open MPI's plugin starts MPICH's ranks as singletons: one line says so at once.
        let wrong = try submit(train(output: "pmix"), extraEnvironment: ["DEEPDEM_SRUN_MPI": "pmix"])
        let wrongJob = try waitForEnd(wrong, output: "\(work)/pmix.out")
        let wrongOutput = try text("\(work)/pmix.out")
        // 1, or 143 when srun's --kill-on-bad-exit ends the silent rank before it exits.
        XCTAssertEqual(wrongJob["JobState"], "FAILED", wrongOutput)
        XCTAssertEqual(occurrences(of: "deepdem: error: this deepdem was built for MPICH", in: wrongOutput), 1, wrongOutput)
        XCTAssertTrue(wrongOutput.contains("srun without a PMI plugin it speaks (SLURM_STEP_NUM_TASKS=2); use srun --mpi=pmi2"), wrongOutput)
    }

    /// scancel sends SIGTERM to every process of the job, ranks and launcher alike. With either
    /// launcher of the build's MPI (mpirun or Hydra's mpiexec, and srun) the ranks save their state
    /// and the job's exit code is 75, as for a time limit.
    /// Under mpirun it was 1: mpirun returns 1 after a SIGTERM whatever the ranks return, and the
    /// script's forwarded second SIGTERM made mpirun kill the ranks at once.
    func testScancelStopsResumablyUnderEitherLauncher() throws {
        try writeScene()
        for launcher in [Launcher.isMPICH ? "mpiexec" : "mpirun", "srun"] {
            let id = try submit(train(output: launcher) + ["--max-steps", "100000"], extraEnvironment: ["DEEPDEM_LAUNCHER": launcher])
            let (job, output) = try scancelOnceTraining(id, output: launcher, [])
            XCTAssertEqual(job["JobState"], "CANCELLED", output)
            XCTAssertEqual(job["ExitCode"], "75:0", "\(launcher):\n\(output)")
            XCTAssertTrue(output.contains("stopped by a signal after writing a checkpoint"), output)
            let latest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(work)/\(launcher)/state/latest.json")))
            XCTAssertGreaterThan((latest as? [String: Any])?["step"] as? Int ?? 0, 0, "\(launcher): no state saved")
        }
    }

    /// Cross-validation as a 3-task array (slurm/crossval.sbatch): task K trains fold K of a
    /// 3-stripe scene into cv/fold_K and ends with its test.json; one task gets the time-limit
    /// warning mid-training, requeues itself alone and resumes; `deepdem summary` then puts the
    /// three folds side by side with their mean.
    func testCrossValidationArrayRequeuesOneFoldAndSummarizes() throws {
        try writeScene()
        try writeConfig("\(work)/cv.yaml", chipSize: 32, out: "\(work)/cv", "split: {stripes: 3, axis: x, val: 1, test: 2}")
        try FileManager.default.createDirectory(atPath: "\(work)/cv", withIntermediateDirectories: true)
        let array = try submit(["--array=0-2", "--nodes=1", "--ntasks-per-node=1", "--cpus-per-task=1",
                                "--output=\(work)/cv/fold_%a.out", "\(Self.repo)/slurm/crossval.sbatch", "\(work)/cv.yaml"])
        // What Slurm sends 120 s before the time limit, to task 1 alone.
        let (requeued, requeuedOutput) = try scancelOnceTraining("\(array)_1", output: "cv/fold_1", ["--signal=USR1", "--batch"])
        XCTAssertEqual(requeued["JobState"], "COMPLETED", requeuedOutput)
        XCTAssertEqual(requeued["Restarts"], "1", "task 1 was not requeued once:\n\(requeuedOutput)")
        XCTAssertTrue(requeuedOutput.contains("resuming at step "), requeuedOutput)
        for fold in 0..<3 {
            let task = try waitForEnd("\(array)_\(fold)", output: "\(work)/cv/fold_\(fold).out")
            let output = try text("\(work)/cv/fold_\(fold).out")
            XCTAssertEqual(task["JobState"], "COMPLETED", output)
            if fold != 1 { XCTAssertEqual(task["Restarts"], "0", "task \(fold) was requeued with task 1") }
            XCTAssertTrue(output.contains("crossval.sbatch: array task \(fold) of job \(array): fold \(fold) into \(work)/cv/fold_\(fold)"),
                          output)
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(work)/cv/fold_\(fold)/test.json")))
            XCTAssertEqual((report as? [String: Any])?["fold"] as? Int, fold)
        }
        let summary = try shell([TrainingRun.deepdem, "summary"] + (0..<3).map { "\(work)/cv/fold_\($0)" } + ["--json", "\(work)/cv/summary.json"])
        XCTAssertEqual(summary.status, 0, summary.stderr)
        XCTAssertTrue(summary.stdout.contains("fold_0") && summary.stdout.contains("mean"), summary.stdout)
        let refined = try (0..<3).map { fold -> Double in
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(work)/cv/fold_\(fold)/test.json")))
            return try XCTUnwrap((((report as? [String: Any])?["overall"] as? [String: Any])?["refined"] as? [String: Any])?["mae"] as? Double)
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(work)/cv/summary.json"))) as? [String: Any]
        let mean = try XCTUnwrap(((json?["mean"] as? [String: Any])?["refined"] as? [String: Any])?["mae"] as? Double)
        XCTAssertEqual(mean, refined.reduce(0, +) / 3, accuracy: 1e-12)
    }

    /// A scene folder that does not exist ends the job at once, with the trainer's error line.
    func testMissingSceneFailsWithinSeconds() throws {
        try writeScene(synthesize: false)
        let start = Date()
        let id = try submit(train(output: "bad") + ["--data", "\(work)/no-such-scene"])
        let job = try waitForEnd(id, output: "\(work)/bad.out")
        let output = try text("\(work)/bad.out")
        XCTAssertEqual(job["JobState"], "FAILED", output)
        XCTAssertEqual(job["ExitCode"], "1:0", output)
        XCTAssertLessThan(Date().timeIntervalSince(start), 30, "the failure took too long")
        XCTAssertEqual(occurrences(of: "deepdem: error:", in: output), 1, output)
        XCTAssertTrue(output.contains("no-such-scene"), output)
    }

    // MARK: - helpers

    /// Once job `id` has trained a step (its run folder `name` has metrics), `scancel options id`;
    /// then the job's fields and output once it has ended.
    private func scancelOnceTraining(_ id: String, output name: String, _ options: [String]) throws
        -> (job: [String: String], output: String) {
        try waitFor("training to start", timeout: 120, output: "\(work)/\(name).out") {
            !((try? text("\(work)/\(name)/metrics.jsonl")) ?? "").isEmpty
        }
        let cancel = try shell(["scancel"] + options + [id])
        XCTAssertEqual(cancel.status, 0, cancel.stderr)
        let job = try waitForEnd(id, output: "\(work)/\(name).out")
        return (job, try text("\(work)/\(name).out"))
    }

    /// A train.sbatch job that gets Slurm's time-limit warning once training is under way:
    /// it checkpoints, requeues itself once, resumes, and ends with the checkpoints (weights and
    /// metadata) of the uninterrupted run in the run folder `reference`.
    private func requeueAndResume(output name: String, sameAs reference: String,
                                  extraEnvironment: [String: String] = [:]) throws {
        let id = try submit(train(output: name), extraEnvironment: extraEnvironment)
        // What Slurm sends 120 s before the time limit, delivered now.
        let (job, output) = try scancelOnceTraining(id, output: name, ["--signal=USR1", "--batch"])
        XCTAssertEqual(job["JobState"], "COMPLETED", output)
        XCTAssertEqual(job["Restarts"], "1", "\(name): the job was not requeued once (did training end before the signal?):\n\(output)")
        XCTAssertTrue(output.contains("stopped by signal \(SIGUSR1) at step "), output)
        XCTAssertTrue(output.contains("requeueing job \(id)"), output)
        XCTAssertTrue(output.contains("restart 1,"), "the requeued run did not see SLURM_RESTART_COUNT=1:\n\(output)")
        XCTAssertTrue(output.contains("resuming at step "), output)
        for file in ["last.safetensors", "best.safetensors"] {
            let a = "\(work)/\(reference)/\(file)", b = "\(work)/\(name)/\(file)"
            XCTAssertEqual(try TrainingRun.weights(b), try TrainingRun.weights(a), "\(name) \(file): a requeued run ended with other weights")
            XCTAssertEqual(try SafeTensors.header(of: b).metadata, try SafeTensors.header(of: a).metadata,
                           "\(name) \(file): a requeued run wrote other metadata")
        }
    }

    /// A small synthetic scene and a training config for it: a 3-level U-Net on 48 px chips,
    /// a few seconds of training on two ranks.
    private func writeScene(synthesize: Bool = true) throws {
        if synthesize {
            let synth = try shell([TrainingRun.deepdem, "synth", "--out", "\(work)/scene", "--size", "256", "--seed", "1"])
            guard synth.status == 0 else { throw Failure("deepdem synth failed: \(synth.stderr)") }
        }
        try writeConfig("\(work)/train.yaml", chipSize: 48, out: "\(work)/run", "target: lidar_data\nmax_epochs: 100")
    }

    /// A training config of the scene written by `writeScene`: a 3-level U-Net, a few seconds of
    /// training, with `extra` YAML lines.
    private func writeConfig(_ path: String, chipSize: Int, out: String, _ extra: String) throws {
        try """
            data: \(work)/scene
            bands: [asp_dsm, ortho_channel1, ortho_channel2, ndvi]
            arch: unet
            unet: {depth: 3, start_kernel: 8, max_filter_depth: 32}
            chip_size: \(chipSize)
            gsf: 5.0
            batch_size: 8
            lr: 1.0e-3
            samples_per_epoch: 320
            val_samples: 16
            max_steps: \(Self.maxSteps)
            checkpoint_every: 1000
            log_every: 10
            seed: 3
            out: \(out)
            \(extra)
            """.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// sbatch arguments for train.sbatch on two nodes × one rank of `cpus` CPUs, output and run folder named.
    private func train(output name: String, cpus: Int = 1) -> [String] {
        ["--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=\(cpus)", "--output=\(work)/\(name).out",
         "\(Self.repo)/slurm/train.sbatch", "\(work)/train.yaml", "--out", "\(work)/\(name)"]
    }

    /// Mean absolute error of a refined DSM and of the initial one, against the lidar DSM.
    private func evaluate(_ refined: String) throws -> (refined: Double, initial: Double) {
        let result = try shell([TrainingRun.deepdem, "evaluate", "--prediction", refined,
                                "--truth", "\(work)/scene/final_lidar_data.tif",
                                "--initial", "\(work)/scene/final_asp_dsm.tif", "--json"])
        guard result.status == 0,
              let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: Any]],
              let r = json["refined"]?["mae"] as? Double, let i = json["initial"]?["mae"] as? Double
        else { throw Failure("deepdem evaluate failed: \(result.stderr)\(result.stdout)") }
        return (r, i)
    }

    private var environment: [String: String] {
        [
            "SLURM_CONF": "\(cluster)/slurm.conf",
            "DEEPDEM": TrainingRun.deepdem,
            // The two simulated nodes share one host: Open MPI's shared-memory segments of
            // the two "nodes" would collide.
            "OMPI_MCA_btl": "self,tcp",
            "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "SWIFT_BACKTRACE": "enable=no",
            // srun's PMI plugin for the build's MPI: MPICH's ranks under pmix would each be a singleton.
            "DEEPDEM_SRUN_MPI": Launcher.isMPICH ? "pmi2" : "pmix",
        ]
    }

    private func submit(_ arguments: [String], extraEnvironment: [String: String] = [:]) throws -> String {
        let result = try shell(["sbatch", "--parsable", "--chdir=\(work)"] + arguments, extraEnvironment: extraEnvironment)
        guard result.status == 0 else { throw Failure("sbatch failed: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The job's fields once it has ended (COMPLETED, FAILED, CANCELLED, TIMEOUT…).
    private func waitForEnd(_ id: String, output: String, timeout: TimeInterval = 180) throws -> [String: String] {
        var fields: [String: String] = [:]
        try waitFor("job \(id) to end", timeout: timeout, output: output) {
            fields = try job(id)
            return ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"]
                .contains(fields["JobState"] ?? "")
        }
        return fields
    }

    private func waitFor(_ what: String, timeout: TimeInterval, output: String, _ done: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try done() { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw Failure("timed out waiting for \(what); job output:\n\((try? text(output)) ?? "(none)")")
    }

    private func job(_ id: String) throws -> [String: String] {
        let result = try shell(["scontrol", "--oneliner", "show", "job", id])
        var fields: [String: String] = [:]
        for pair in result.stdout.split(whereSeparator: \.isWhitespace) {
            guard let eq = pair.firstIndex(of: "=") else { continue }
            fields[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        return fields
    }

    private func text(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    private func occurrences(of needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    private struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private struct Result { var status: Int32; var stdout: String; var stderr: String }

    private func shell(_ arguments: [String], extraEnvironment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment
            .merging(cluster.isEmpty ? [:] : environment) { $1 }.merging(extraEnvironment) { $1 }
        // stderr goes to a file: reading two pipes in turn can deadlock on a chatty child.
        let errPath = NSTemporaryDirectory() + "slurm-tests-\(UUID().uuidString).err"
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errData = FileManager.default.contents(atPath: errPath) ?? Data()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}
