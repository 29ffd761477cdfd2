import Foundation

/// How a `--resume` differs from the run it continues. A requeued or resubmitted Slurm job often
/// lands on another allocation, so settings that leave the mathematics alone may change freely;
/// any other change is refused unless `--resume-anyway`, which then applies it.
struct Resumption {
    /// Settings a resumed run may change without --resume-anyway: the run's length, and how the
    /// same steps are computed, stored and logged.
    static let freeSettings: Set<String> = ["max_steps", "max_epochs", "threads", "bucket_mb", "cache_mb", "log_every",
                                            "checkpoint_every", "keep_last", "precision"]

    struct Change: Equatable {
        let key: String, was: String, now: String
    }

    /// Every top-level setting that differs from the saved configuration, by key.
    let changes: [Change]
    /// The ranks that saved the state (nil for a state saved before they were recorded) and their threads.
    let savedRanks: Int?, savedThreads: Int
    let anyway: Bool

    init(saved: TrainingConfig, savedRanks: Int?, now: TrainingConfig, anyway: Bool) throws {
        func fields(_ c: TrainingConfig) throws -> [String: String] {
            let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(c)) as? [String: Any] ?? [:]
            return try object.mapValues {
                String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
            }
        }
        let a = try fields(saved), b = try fields(now)
        changes = Set(a.keys).union(b.keys).sorted().compactMap { key in
            a[key] == b[key] ? nil : Change(key: key, was: a[key] ?? "unset", now: b[key] ?? "unset")
        }
        self.savedRanks = savedRanks
        savedThreads = saved.threads
        self.anyway = anyway
        let refused = changes.map(\.key).filter { !Resumption.freeSettings.contains($0) }
        if !refused.isEmpty && !anyway { throw ResumeMismatch(keys: refused) }
    }

    func changed(_ key: String) -> Bool { changes.contains { $0.key == key } }

    /// What the run's log says about the resumption on `ranks` ranks of `threads` threads each.
    func notes(ranks: Int, threads: Int, unsyncedBatchNorm: Bool) -> [String] {
        var notes: [String] = []
        func allocation(_ r: Int, _ t: Int) -> String { "\(r) rank\(r == 1 ? "" : "s") × \(t) thread\(t == 1 ? "" : "s")" }
        if let savedRanks, savedRanks != ranks || savedThreads != threads {
            notes.append("resumed on \(allocation(ranks, threads)); was \(allocation(savedRanks, savedThreads))")
        }
        if let savedRanks, savedRanks != ranks, unsyncedBatchNorm {
            notes.append("BatchNorm normalizes over each rank's share of the batch (sync_batchnorm is off), so steps on "
                + "\(ranks) ranks differ from those on \(savedRanks)")
        }
        if !changes.isEmpty {
            let list = changes.map { "\($0.key) \($0.was) → \($0.now)" }.joined(separator: ", ")
            notes.append("settings changed on resume\(anyway ? " (--resume-anyway)" : ""): \(list)")
        }
        return notes
    }
}

/// `--resume` with a configuration that differs from the run folder's in a setting that changes
/// the mathematics.
public struct ResumeMismatch: Error, CustomStringConvertible {
    public let keys: [String]
    public var description: String {
        "the run folder was trained with different settings for: \(keys.joined(separator: ", ")) "
            + "(on --resume only \(Resumption.freeSettings.sorted().joined(separator: ", ")) may change; --resume-anyway overrides)"
    }
}
