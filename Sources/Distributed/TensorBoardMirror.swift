import Foundation
import TensorBoard

/// RUN/tensorboard/ holds one event file with every numeric scalar of metrics.jsonl at its line's
/// step, so `tensorboard --logdir runs/` shows every run. metrics.jsonl is the one record:
/// at each start (fresh, resumed or --overwrite) the event file is rebuilt from it, so a resumed
/// run, whose metrics.jsonl was truncated to its saved step, continues the curves without a step twice.
extension RunFolder {
    var tensorBoardFolder: String { file("tensorboard") }

    /// Replaces every event file of the folder by one that replays metrics.jsonl. A killed
    /// rebuild's temporary goes too: TensorBoard reads any file whose name holds "tfevents".
    func rebuildTensorBoard() throws {
        let folder = tensorBoardFolder
        for name in folderEntries() where name.contains(EventFile.namePrefix) {
            let path = (folder as NSString).appendingPathComponent(name)
            do { try FileManager.default.removeItem(atPath: path) } catch {
                throw TrainingError("cannot remove \(path) of the earlier run: \(error.localizedDescription)")
            }
        }
        let now = Date().timeIntervalSince1970
        var step = 0
        var events: [ScalarEvent] = []
        let text = (try? String(contentsOfFile: metrics, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            step = object["step"] as? Int ?? step
            let scalars = MetricScalars.of(object)
            if !scalars.isEmpty { events.append(ScalarEvent(step: step, wallTime: now, scalars: scalars)) }
        }
        _ = try EventFile.create(in: folder, events: events, wallTime: now)
    }

    /// Appends the scalars of `line`, just appended to metrics.jsonl and read back from its JSON so
    /// that both hold the same numbers; a line without a step (the test metrics) takes the step of
    /// the last line that has one.
    func appendTensorBoard(line: Data) throws {
        guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else { return }
        let scalars = MetricScalars.of(object)
        guard !scalars.isEmpty else { return }
        let event = ScalarEvent(step: object["step"] as? Int ?? lastLoggedStep(), wallTime: Date().timeIntervalSince1970,
                                scalars: scalars)
        if let name = existingEventFiles().last {
            try EventFile(path: (tensorBoardFolder as NSString).appendingPathComponent(name)).append(event)
        } else {
            _ = try EventFile.create(in: tensorBoardFolder, events: [event])
        }
    }

    private func folderEntries() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: tensorBoardFolder)) ?? []).sorted()
    }

    private func existingEventFiles() -> [String] { folderEntries().filter { $0.hasPrefix(EventFile.namePrefix) } }

    private func lastLoggedStep() -> Int {
        let text = (try? String(contentsOfFile: metrics, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n").reversed() {
            if let s = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["step"] as? Int { return s }
        }
        return 0
    }
}

/// The scalars of one metrics line as JSONSerialization decodes it: every number but the
/// coordinates, nested objects flattened to tags joined by "/" (`{"test": {"overall": {"refined":
/// {"mae": …}}}}` → `test/overall/refined/mae`; arrays, such as per-scene lists, are left out),
/// in key order.
enum MetricScalars {
    /// Where a line (or a nested report, like the test metrics' tested step and fold) lies, not
    /// what it measured: the training and validation lines of one step both carry its epoch,
    /// which as a scalar would be logged twice at that step.
    static let coordinates: Set<String> = ["step", "epoch", "fold"]

    static func of(_ object: [String: Any], prefix: String = "") -> [ScalarEvent.Scalar] {
        object.keys.sorted().flatMap { key -> [ScalarEvent.Scalar] in
            if coordinates.contains(key) { return [] }
            let tag = prefix + key
            switch object[key] {
            case let nested as [String: Any]: return of(nested, prefix: tag + "/")
            case let number as NSNumber where !isBoolean(number): return [ScalarEvent.Scalar(tag, number.floatValue)]
            default: return []
            }
        }
    }

    /// JSON's true and false decode to NSNumbers that also cast to Int and Double (and 0 and 1
    /// cast to Bool), so a boolean is told by its type code, "c".
    static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }
}
