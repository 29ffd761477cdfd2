import Foundation
import NN
import Primitives

/// What a run must carry over a restart besides the weights and the optimizer's moments.
public struct TrainerState: Codable, Equatable, Sendable {
    public var step = 0
    public var lr: Double
    public var gsf: Double
    public var plateau: ReduceLROnPlateau?
    public var stepLR: StepLR?
    public var bestValLoss: Double?
    public var bestStep: Int?
    /// Early stopping: best validation loss seen and validations since it improved by min_delta.
    public var earlyBest: Double?
    public var earlyBad = 0
    /// The run was stopped during the validation of `step`, which a resumed run does first.
    public var validationPending: Bool?

    public init(lr: Double, gsf: Double) {
        self.lr = lr
        self.gsf = gsf
    }
}

/// A run folder (README, Training; docs/ARCHITECTURE.md, Where the contracts are): `last.safetensors`, `best.safetensors`, `config.json`,
/// `metrics.jsonl`, `loss.svg`, the resume state in `state/`, metrics.jsonl's TensorBoard mirror
/// in `tensorboard/`, and for a run with test data `test.json` and the refined test regions in
/// `test/`. Only rank 0 writes it.
///
/// Every file is written to a temporary name and renamed, and the resume state is a pair of
/// step-stamped files (weights, optimizer) named by `state/latest.json`, which is replaced last:
/// a crash at any instant leaves the previous complete state in force.
public struct RunFolder: Sendable {
    public let path: String

    public init(_ path: String) { self.path = path }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    var stateFolder: String { file("state") }
    public var last: String { file("last.safetensors") }
    public var best: String { file("best.safetensors") }
    public var metrics: String { file("metrics.jsonl") }
    public var configFile: String { file("config.json") }
    var latest: String { (stateFolder as NSString).appendingPathComponent("latest.json") }

    struct Latest: Codable {
        var step: Int
        var weights: String
        var optimizer: String
        var trainer: TrainerState
        /// The ranks that saved it; absent in states saved before they were recorded.
        var ranks: Int?
        /// SHA-256 of each state file, by name; absent in states saved before checksums were.
        var sha256: [String: String]?
    }

    public var hasState: Bool { FileManager.default.fileExists(atPath: latest) }

    /// What a run writes here: `--overwrite` removes exactly these, and none may be an input.
    var runFiles: [String] { [last, best, metrics, configFile, file("loss.svg"), file("test.json")] }
    var runFolders: [String] { [stateFolder, file("checkpoints"), file("test"), tensorBoardFolder] }

    /// True when an earlier run left its files here (every run writes config.json first).
    var holdsRun: Bool { runFiles.contains { FileManager.default.fileExists(atPath: $0) } }

    /// Removes an earlier run's files (not the folder, nor files of the user's own in it).
    func removeRun() throws {
        for path in runFiles + runFolders where FileManager.default.fileExists(atPath: path) {
            do { try FileManager.default.removeItem(atPath: path) } catch {
                throw TrainingError("cannot remove \(path) of the earlier run: \(error.localizedDescription)")
            }
        }
    }

    /// Takes the folder's lock (`train.lock`, created with the folder), held until the process
    /// ends, so a second training cannot interleave its checkpoints with this one's. `flock`
    /// excludes across nodes only where the shared file system implements it (NFS through its
    /// lock manager, Lustre when mounted with `-o flock`): where it does not, the lock is not
    /// taken and the returned reason says why.
    func lock() throws -> (lock: RunLock?, unavailable: String?) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw TrainingError("cannot create the run folder \(path): \(error.localizedDescription)")
        }
        let path = file("train.lock")
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError("\(path): cannot open the run folder's lock: \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return (RunLock(fd: fd), nil) }
        let reason = errno
        close(fd)
        if reason == EWOULDBLOCK {
            throw TrainingError("\(self.path): another deepdem train is running in this run folder (it holds \(path)); "
                + "wait for it to end or choose another --out")
        }
        return (nil, "cannot lock \(path) (\(String(cString: strerror(reason)))): a second training in this folder would not be noticed")
    }

    public func create() throws {
        do {
            try FileManager.default.createDirectory(atPath: stateFolder, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("cannot create the run folder \(path): \(error.localizedDescription)")
        }
    }

    /// Writes weights, optimizer state and trainer state for `state.step`, then `last.safetensors`.
    func saveState(network: any Network, optimizer: Adam, trainer: TrainerState, ranks: Int, metadata: [String: String]) throws {
        let stamp = String(format: "%09d", trainer.step)
        let weights = "weights-\(stamp).safetensors", optim = "optimizer-\(stamp).safetensors"
        let folder = stateFolder as NSString
        try Checkpoint.save(network, to: folder.appendingPathComponent(weights), extraMetadata: metadata)
        try optimizer.state.write(to: folder.appendingPathComponent(optim))
        var digests: [String: String] = [:]
        for name in [weights, optim] { digests[name] = try SHA256.hex(ofFile: folder.appendingPathComponent(name)) }
        let previous = try? readLatest()
        let json = try JSONEncoder().encode(Latest(step: trainer.step, weights: weights, optimizer: optim, trainer: trainer,
                                                   ranks: ranks, sha256: digests))
        try StagedOutput.write(json, to: latest)
        if let previous, previous.step != trainer.step {
            try? FileManager.default.removeItem(atPath: folder.appendingPathComponent(previous.weights))
            try? FileManager.default.removeItem(atPath: folder.appendingPathComponent(previous.optimizer))
        }
        try Checkpoint.save(network, to: last, extraMetadata: metadata)
    }

    /// The global scale factor the saved run was trained with.
    func savedGSF() throws -> Double { try readLatest().trainer.gsf }

    /// The number of ranks that saved the state, where it was recorded.
    func savedRanks() throws -> Int? { try readLatest().ranks }

    /// latest.json, its values checked: a damaged or crafted state is refused here, before any of it is used.
    private func readLatest() throws -> Latest {
        let l: Latest
        do {
            l = try JSONDecoder().decode(Latest.self, from: Data(contentsOf: URL(fileURLWithPath: latest)))
        } catch {
            throw TrainingError("\(latest): unreadable resume state (\(error.localizedDescription))")
        }
        let t = l.trainer
        let problems: [(Bool, String)] = [
            (l.step >= 0 && t.step == l.step, "step \(l.step) (trainer step \(t.step)): steps are 0 or more and agree"),
            (t.gsf.isFinite && t.gsf > 0, "gsf \(t.gsf): it must be a positive number"),
            (t.lr.isFinite && t.lr > 0, "lr \(t.lr): it must be a positive number"),
            (t.stepLR.map { $0.stepSize > 0 && $0.lastEpoch >= 0 } ?? true,
             "stepLR \(t.stepLR.map { "step_size \($0.stepSize), last_epoch \($0.lastEpoch)" } ?? ""): step_size is positive, last_epoch not negative"),
            (l.ranks.map { $0 > 0 } ?? true, "ranks \(l.ranks ?? 0): there is at least one"),
            ([l.weights, l.optimizer].allSatisfy { !$0.isEmpty && !$0.contains("/") && $0 != ".." },
             "state files '\(l.weights)', '\(l.optimizer)': they are names within \(stateFolder)"),
        ]
        if let (_, problem) = problems.first(where: { !$0.0 }) { throw TrainingError("\(latest): damaged resume state: \(problem)") }
        return l
    }

    /// Loads the latest state into `network` and `optimizer`, each file checked against the
    /// checksum latest.json records and the values against what a trained state can hold; returns
    /// the trainer state.
    func loadState(network: any Network, optimizer: Adam) throws -> TrainerState {
        let l = try readLatest()
        let folder = stateFolder as NSString
        for name in [l.weights, l.optimizer] {
            let file = folder.appendingPathComponent(name)
            if let expected = l.sha256?[name], try SHA256.hex(ofFile: file) != expected {
                throw TrainingError("\(file): damaged: its SHA-256 is not the one \(latest) records")
            }
        }
        let weights = folder.appendingPathComponent(l.weights), moments = folder.appendingPathComponent(l.optimizer)
        try Checkpoint.load(weights, into: network)
        let finite = network.state().allSatisfy { _, entry in
            switch entry {
            case .parameter(let p): return p.value.array.allSatisfy(\.isFinite)
            case .buffer(let t): return t.array.allSatisfy(\.isFinite)
            case .counter(let c): return c.value >= 0
            }
        }
        guard finite else { throw TrainingError("\(weights): damaged: it holds values that are not finite") }
        do {
            try optimizer.restore(OptimizerState.read(moments).state)
        } catch {
            throw TrainingError("\(moments): \(error)")
        }
        return l.trainer
    }

    func savedConfig() throws -> TrainingConfig? {
        guard let data = FileManager.default.contents(atPath: configFile) else { return nil }
        do {
            return try JSONDecoder().decode(TrainingConfig.self, from: data)
        } catch {
            throw TrainingError("\(configFile): unreadable (\(error.localizedDescription))")
        }
    }

    func writeConfig(_ config: TrainingConfig) throws {
        try StagedOutput.write(config.json(), to: configFile)
    }

    /// Keeps the metrics of steps up to `step` (a resumed run logs the later ones again).
    func truncateMetrics(after step: Int) throws {
        guard let text = try? String(contentsOfFile: metrics, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = obj["step"] as? Int else { return false }
            return s <= step
        }
        try StagedOutput.write(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: metrics)
    }

    func appendMetrics(_ object: [String: Any]) throws {
        let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) + Data("\n".utf8)
        if let h = FileHandle(forWritingAtPath: metrics) {
            defer { try? h.close() }
            try h.seekToEnd()
            try h.write(contentsOf: line)
        } else {
            try line.write(to: URL(fileURLWithPath: metrics))
        }
        try appendTensorBoard(line: line)
    }
}

/// An open, locked `train.lock`; the kernel releases it when the process ends, however it ends.
final class RunLock: @unchecked Sendable {
    private let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}

extension TrainingConfig {
    /// The configuration as a run folder's config.json holds it and `train --print-config` shows it:
    /// every key, defaults resolved, sorted, one per line.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}
