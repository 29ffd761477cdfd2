import ArgumentParser
import Distributed
import Foundation
import NN
import Yams

/// Exit codes of `deepdem train`, for job scripts.
enum TrainExit {
    static let finished: Int32 = 0
    static let userError: Int32 = 1
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    static let diverged: Int32 = 3
    /// Stopped by SIGTERM, SIGINT or SIGUSR1 after saving its state: `--resume` continues.
    static let resumable: Int32 = 75
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (one process, or every rank of mpirun/srun).",
        discussion: """
            Settings come from --config (YAML or JSON) and from flags: every top-level key is also \
            a flag, with dashes or underscores (--max-steps 20, --out runs/a, --data scenes/x, \
            --unet '{depth: 4}'). Flags win over the file.
            accumulate_grad_batches K: each step is K micro-batches of batch_size/K chips whose \
            gradients sum before one all-reduce, the step of one batch_size batch (BatchNorm models \
            excepted: they normalize per micro-batch). rotate90: true turns training chips by \
            multiples of 90° besides the flips (chips are square). unet: {up_mode: bilinear} upsamples             the decoder bilinearly then by a conv1×1, as ResDepth's option does (default transpose).             ortho_standardization: none (default), tile (each ortho_* band of each chip to zero mean,             unit std over its valid pixels) or {mean: M, std: S} (ResDepth's (x - M)/S, mean null:             each chip centred on its orthos' mean); it is stored in the checkpoint and refine applies it.
            Exit codes: 0 finished, 1 bad input, 3 the loss diverged, 75 stopped by a signal \
            (SIGTERM/SIGINT/SIGUSR1) after saving its state; --resume continues.
            Held-out data: train_split 0.8 trains on the left 80 % of each scene of 'data' and \
            validates on the rest; data roles {train: [...], val: [...], test: [...]} hold out whole \
            scenes; split {stripes: N, axis: x|y, val: I, test: J} cuts each scene into N stripes \
            (validation stripe I, test stripe J, the rest trains), and fold K rotates them to \
            (I+K) mod N and (J+K) mod N. Training chips keep a margin of half a chip from held-out \
            stripes. A run with test data ends by refining each test scene with best.safetensors \
            (the last weights without validation) into RUN/test/ and writing RUN/test.json.
            Known keys: \(TrainingConfig.keys.sorted().joined(separator: ", ")).
            """)

    @Option(help: "A YAML or JSON configuration file.")
    var config: String?

    @Flag(help: "Continue from the run folder's saved state (a run folder without one starts fresh).")
    var resume = false

    @Flag(help: "With --resume: accept settings that differ from the run folder's.")
    var resumeAnyway = false

    @Flag(help: "Replace the run the run folder holds (without it, a folder that holds a run is refused; --resume continues it).")
    var overwrite = false

    @Option(name: .customLong("init"), help: "Initialize the weights from this checkpoint (fine-tuning).")
    var initCheckpoint: String?

    @Flag(help: "Print the resolved configuration (the file, the flags over it, the defaults) as JSON and exit, without training or MPI.")
    var printConfig = false

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var overrides: [String] = []

    func run() {
        let settings: TrainingConfig
        do {
            settings = try TrainingConfig.decode(loadSettings())
        } catch {
            fail(error)
        }
        if printConfig {
            guarded {
                try settings.validate(ranks: 1)
                print(String(decoding: try settings.json(), as: UTF8.self))
            }
            return
        }
        // Without mpirun this is an MPI singleton (rank 0 of 1). No fallback to a single-process
        // communicator: under mpirun that would silently train N separate models.
        let comm: Communicator
        let convNotice: String?
        do { convNotice = try ConvChoice.apply() } catch { fail(error) }
        do {
            comm = try MPICommunicator()
        } catch CommunicatorError.wrongLauncher(let wrong) where wrong.launcherRank != 0 {
            // Each rank is a singleton: the launcher's rank 0 says why. The others give it time to
            // say it, since the first rank to exit makes srun kill the rest of the step.
            Thread.sleep(forTimeInterval: 2)
            Foundation.exit(TrainExit.userError)
        } catch {
            fail(error)
        }
        if let convNotice, comm.rank == 0 { Console.line(convNotice) }
        let stop = StopRequest.install()
        let printer = ProgressPrinter(logEvery: settings.logEvery)
        let trainer: Trainer
        do {
            trainer = try Trainer(config: settings, communicator: comm, resume: resume, resumeAnyway: resumeAnyway,
                                  overwrite: overwrite, configFile: config, initCheckpoint: initCheckpoint,
                                  stop: { stop.signal }, events: printer.show)
        } catch let failure as RankFailure {
            end(failure, comm)
        } catch {
            comm.rank == 0 ? fail(error) : Foundation.exit(TrainExit.userError)
        }
        let outcome: TrainingOutcome
        do {
            outcome = try trainer.run()
        } catch let failure as RankFailure {
            end(failure, comm)
        } catch {
            // MPI itself failed: other ranks may be stuck in a collective, so the job ends now.
            FileHandle.standardError.write(Data("deepdem: error: rank \(comm.rank): \(error)\n".utf8))
            comm.abort(code: TrainExit.userError)
        }
        let (code, message): (Int32, String)
        switch outcome {
        case .finished(let why):
            (code, message) = (TrainExit.finished, "done: \(why); weights in \(settings.out)/last.safetensors, best in \(settings.out)/best.safetensors")
        case .stopped(let signal, let step):
            (code, message) = (TrainExit.resumable, "stopped by signal \(signal) at step \(step); state saved, continue with --resume")
        case .diverged(let step):
            (code, message) = (TrainExit.diverged, "diverged at step \(step); the last good checkpoint is in \(settings.out)")
        }
        // Before MPI_Finalize, which mpirun holds up until its kill timeouts after a SIGTERM.
        if comm.rank == 0 {
            recordExitCode(code)
            Console.line(message)
        }
        try? comm.finalize()
        Foundation.exit(code)
    }

    /// Under mpirun a job stopped by SIGTERM ends with mpirun's own status 1, whatever the ranks
    /// return (Open MPI 4.1), and mpirun may hold the ranks in MPI_Finalize until its kill
    /// timeouts pass; so rank 0 writes its code, before finalizing, to DEEPDEM_EXIT_CODE_FILE when
    /// set, where slurm/train.sbatch reads it.
    func recordExitCode(_ code: Int32) {
        guard let path = ProcessInfo.processInfo.environment["DEEPDEM_EXIT_CODE_FILE"] else { return }
        try? "\(code)\n".write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Every rank knows a rank failed: all leave through MPI_Finalize, which ends the job without
    /// Open MPI's abort report, and the one rank that `report`s prints the error line.
    func end(_ failure: RankFailure, _ comm: Communicator) -> Never {
        if comm.rank == 0 { recordExitCode(TrainExit.userError) }
        try? comm.finalize()
        if failure.report { fail(failure) }
        Foundation.exit(TrainExit.userError)
    }

    /// The config file's mapping with the flags applied over it.
    func loadSettings() throws -> [String: Any] {
        var object: [String: Any] = [:]
        if let config { object = try readConfigMapping(config) }
        var i = 0
        while i < overrides.count {
            let flag = overrides[i]
            guard flag.hasPrefix("--") else { throw CLIError("unexpected argument '\(flag)'") }
            var key = String(flag.dropFirst(2)), value: String
            if let eq = key.firstIndex(of: "=") {
                value = String(key[key.index(after: eq)...])
                key = String(key[..<eq])
            } else {
                guard i + 1 < overrides.count else { throw CLIError("\(flag) needs a value") }
                i += 1
                value = overrides[i]
            }
            key = key.replacingOccurrences(of: "-", with: "_")
            guard TrainingConfig.keys.contains(key) else {
                throw CLIError("unknown option '\(flag)' (config keys as flags: \(TrainingConfig.keys.sorted().map { "--" + $0.replacingOccurrences(of: "_", with: "-") }.joined(separator: ", ")))")
            }
            // A flag's value is YAML too: numbers, true/false, null, lists [a, b], mappings {k: v}.
            try YAMLLimits.check(value, source: flag)
            let parsed = (try? Yams.load(yaml: value)).map(plain) ?? value
            if let nested = parsed as? [String: Any], let base = object[key] as? [String: Any] {
                object[key] = base.merging(nested) { $1 }
            } else {
                object[key] = parsed ?? NSNull()
            }
            i += 1
        }
        return object
    }
}

/// Rank 0's view of training: a live line on a terminal; plain lines every `log_every` steps in
/// a log file (as in a Slurm output file).
final class ProgressPrinter: @unchecked Sendable {
    let logEvery: Int
    init(logEvery: Int) { self.logEvery = logEvery }

    func show(_ event: TrainingEvent) {
        switch event {
        case .started(let s):
            Console.line("""
                deepdem train: \(s.ranks) rank\(s.ranks == 1 ? "" : "s") (chips per rank per step \(s.localBatch.lowerBound == s.localBatch.upperBound ? "\(s.localBatch.lowerBound)" : "\(s.localBatch.lowerBound)-\(s.localBatch.upperBound)")), \
                \(s.parameters) parameters, gsf \(String(format: "%.3f", s.gsf)), \(s.buckets) gradient bucket\(s.buckets == 1 ? "" : "s"), \
                OpenBLAS \(s.blasCore) × \(s.blasThreads) thread\(s.blasThreads == 1 ? "" : "s"); MPI library: \(MPILibrary.loaded()); \
                \(s.resumed ? "resuming at" : "starting at") step \(s.startStep) of \(s.totalSteps) (\(s.stepsPerEpoch) per epoch)
                """)
        case .step(let r):
            let text = String(format: "epoch %d step %d/%d  loss %.4f  lr %.2e  %.1f tiles/s  ETA %@",
                              r.epoch, r.step, r.totalSteps, r.loss, r.lr, r.tilesPerSecond, duration(r.secondsLeft))
            if Console.outputIsLive { Console.live(text) } else { Console.line(text) }
        case .validated(let step, let epoch, let loss, let best):
            Console.endLive()
            Console.line(String(format: "validation: epoch %d step %d  val_loss %.4f%@", epoch, step, loss, best ? "  (best)" : ""))
        case .checkpoint(let step, let path):
            if !Console.outputIsLive { Console.line("checkpoint: step \(step) → \(path)") }
        case .note(let text):
            Console.endLive()
            Console.line(text)
        case .tested(let t):
            Console.endLive()
            let region = t.window.map { " (window \($0.x),\($0.y),\($0.width),\($0.height))" } ?? ""
            Console.line(String(format: "test: %@%@  MAE %.3f → %.3f m, RMSE %.3f → %.3f m over %d px → %@",
                                t.scene, region, t.initial.mae, t.refined.mae, t.initial.rmse, t.refined.rmse, t.refined.count, t.output))
        case .testWritten(let path, let report):
            let o = report.overall
            Console.line(String(format: "test: all %d px  MAE %.3f → %.3f m, RMSE %.3f → %.3f m (%@, step %d) → %@",
                                o.refined.count, o.initial.mae, o.refined.mae, o.initial.rmse, o.refined.rmse,
                                report.checkpoint, report.step, path))
        }
    }

    func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}
