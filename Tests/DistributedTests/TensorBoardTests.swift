import Foundation
import XCTest

/// RUN/tensorboard, read back with TensorBoard's own reader (`EventAccumulator`, from PyPI's
/// `tensorboard` in a venv made once under the build folder): every scalar of metrics.jsonl at
/// its step with its value in float32, nothing else, and each (tag, step) once, also across a
/// resume that logs steps again.
final class TensorBoardTests: XCTestCase {
    func train(_ config: String, ranks: Int, _ extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try TrainingRun.run(["train", "--config", config] + extra, ranks: ranks)
        XCTAssertEqual(r.status, 0, "train failed:\n\(r.stdout)\n\(r.stderr)", file: file, line: line)
    }

    func testEventFileHoldsEveryMetric() throws {
        let python = try TensorBoardReader.python()
        let out = TrainingRun.folder("tensorboard") + "/run"
        // 4 steps an epoch: validations at steps 4 and 6, a training line at every step.
        try train(TrainingRun.config(scene: TrainingRun.scene(), out: out), ranks: 2)
        let names = try FileManager.default.contentsOfDirectory(atPath: out + "/tensorboard")
        XCTAssertEqual(names.count, 1, "\(names)")
        XCTAssertTrue(names.allSatisfy { $0.hasPrefix("events.out.tfevents.") }, "\(names)")
        let read = try TensorBoardReader.scalars(python: python, folder: out + "/tensorboard")
        let expected = try TensorBoardReader.expected(metrics: out + "/metrics.jsonl")
        XCTAssertEqual(Set(expected.keys), ["lr", "tiles_per_s", "train_loss", "val_loss"])
        XCTAssertEqual(expected["train_loss"]?.map(\.step), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(expected["val_loss"]?.map(\.step), [4, 6])
        TensorBoardReader.assertSame(read, expected)
    }

    /// A run with a test stripe: its test line's overall metrics reach TensorBoard at the last step,
    /// initial and refined (`test/overall/refined/mae`, …), beside the training curves.
    func testTestMetricsReachTensorBoard() throws {
        let python = try TensorBoardReader.python()
        let out = TrainingRun.folder("tensorboard-test") + "/run"
        let split: [String: Any] = ["stripes": 3, "axis": "x", "val": 1, "test": 2]
        try train(TrainingRun.config(scene: TrainingRun.scene(), out: out, ["split": split]), ranks: 0)
        let read = try TensorBoardReader.scalars(python: python, folder: out + "/tensorboard")
        let expected = try TensorBoardReader.expected(metrics: out + "/metrics.jsonl")
        for side in ["initial", "refined"] {
            for metric in ["count", "bias", "mae", "rmse", "median", "nmad", "le90"] {
                XCTAssertEqual(expected["test/overall/\(side)/\(metric)"]?.map(\.step), [6], "test/overall/\(side)/\(metric)")
            }
        }
        TensorBoardReader.assertSame(read, expected)
    }

    /// A run stopped at step 3, resumed to 5, then (as if killed after logging steps 4 and 5 past
    /// its last checkpoint) resumed from its step-3 state to 6: metrics.jsonl is cut back to step 3
    /// and the event file rebuilt (a killed rebuild's temporary removed), so TensorBoard sees each
    /// step once. --overwrite starts afresh.
    func testResumeContinuesTheCurvesWithoutDuplicates() throws {
        let python = try TensorBoardReader.python()
        let out = TrainingRun.folder("tensorboard-resume") + "/run"
        let config = try TrainingRun.config(scene: TrainingRun.scene(), out: out, ["max_steps": 3])
        try train(config, ranks: 2)
        let saved = out + "-state-at-3"
        try FileManager.default.copyItem(atPath: out + "/state", toPath: saved)
        try train(config, ranks: 2, ["--resume", "--max-steps", "5"])
        let atFive = try TensorBoardReader.scalars(python: python, folder: out + "/tensorboard")
        XCTAssertEqual(atFive["train_loss"]?.map(\.step), [1, 2, 3, 4, 5])
        TensorBoardReader.assertSame(atFive, try TensorBoardReader.expected(metrics: out + "/metrics.jsonl"))

        try FileManager.default.removeItem(atPath: out + "/state")
        try FileManager.default.copyItem(atPath: saved, toPath: out + "/state")
        // A temporary left by a rebuild that was killed: TensorBoard would read it too.
        let leftover = out + "/tensorboard/.events.out.tfevents.1.host.partial-99"
        XCTAssertTrue(FileManager.default.createFile(atPath: leftover, contents: Data("partial".utf8)))
        try train(config, ranks: 2, ["--resume", "--max-steps", "6"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out + "/tensorboard").count, 1)
        let read = try TensorBoardReader.scalars(python: python, folder: out + "/tensorboard")
        let expected = try TensorBoardReader.expected(metrics: out + "/metrics.jsonl")
        XCTAssertEqual(expected["train_loss"]?.map(\.step), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(expected["val_loss"]?.map(\.step), [3, 4, 6])
        TensorBoardReader.assertSame(read, expected)

        try train(config, ranks: 0, ["--overwrite", "--max-steps", "2"])
        let fresh = try TensorBoardReader.scalars(python: python, folder: out + "/tensorboard")
        XCTAssertEqual(fresh["train_loss"]?.map(\.step), [1, 2])
        TensorBoardReader.assertSame(fresh, try TensorBoardReader.expected(metrics: out + "/metrics.jsonl"))
    }
}

/// TensorBoard's reader in a venv of its own, and what it should find.
enum TensorBoardReader {
    struct Point: Equatable, CustomStringConvertible {
        var step: Int, value: Float
        var description: String { "(\(step), \(value))" }
    }

    struct ReaderFailure: Error, CustomStringConvertible { var description: String }

    /// The venv's python, made (`python3 -m venv`, `pip install tensorboard`) under the build
    /// folder the first time; skips the test, saying why, when pip cannot install it.
    static func python() throws -> String {
        let venv = TrainingRun.binFolder.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("tensorboard-venv").path
        let python = venv + "/bin/python", ready = venv + "/.ready"
        if FileManager.default.fileExists(atPath: ready) { return python }
        try? FileManager.default.removeItem(atPath: venv)
        for (what, argv) in [("python3 -m venv", ["/usr/bin/env", "python3", "-m", "venv", venv]),
                             ("pip install tensorboard (is PyPI reachable?)",
                              [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--timeout", "30",
                               "--retries", "1", "tensorboard"])] {
            let r = try run(argv)
            guard r.status == 0 else {
                let reason = "no TensorBoard reader: \(what) failed: "
                    + (r.stderr.split(separator: "\n").last.map(String.init) ?? "exit \(r.status)")
                print("TensorBoardTests skipped: \(reason)")
                throw XCTSkip(reason)
            }
        }
        FileManager.default.createFile(atPath: ready, contents: nil)
        return python
    }

    /// Every scalar tag's (step, value) pairs as EventAccumulator reads them from `folder`.
    static func scalars(python: String, folder: String) throws -> [String: [Point]] {
        let script = """
            import json, sys
            from tensorboard.backend.event_processing import event_accumulator as ea
            acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0})
            acc.Reload()
            json.dump({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}, sys.stdout)
            """
        let r = try run([python, "-c", script, folder])
        guard r.status == 0, let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: [[Double]]] else {
            throw ReaderFailure(description: "EventAccumulator failed on \(folder): \(r.stderr)")
        }
        return object.mapValues { $0.map { Point(step: Int($0[0]), value: Float($0[1])) } }
    }

    /// What metrics.jsonl says TensorBoard should hold: every number but step, epoch and fold, nested objects
    /// as tags joined by "/", at the line's step (a line without one: the step before it).
    static func expected(metrics: String) throws -> [String: [Point]] {
        var out: [String: [Point]] = [:], step = 0
        func add(_ object: [String: Any], _ prefix: String) {
            for (key, value) in object where !["step", "epoch", "fold"].contains(key) {
                if let nested = value as? [String: Any] { add(nested, prefix + key + "/") }
                else if let n = value as? NSNumber, String(cString: n.objCType) != "c" {
                    out[prefix + key, default: []].append(Point(step: step, value: n.floatValue))
                }
            }
        }
        for line in try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            step = object["step"] as? Int ?? step
            add(object, "")
        }
        return out
    }

    static func assertSame(_ read: [String: [Point]], _ expected: [String: [Point]], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(read.keys), Set(expected.keys), "tags", file: file, line: line)
        for (tag, points) in expected {
            XCTAssertEqual(read[tag], points, "\(tag): TensorBoard's (step, value) pairs", file: file, line: line)
            let steps = (read[tag] ?? []).map(\.step)
            XCTAssertEqual(Set(steps).count, steps.count, "\(tag): a step twice in \(steps)", file: file, line: line)
        }
    }

    static func run(_ argv: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        nonisolated(unsafe) var o = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { o = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let e = err.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
