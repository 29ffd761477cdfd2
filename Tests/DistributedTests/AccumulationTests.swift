import Foundation
import NN
import XCTest

/// accumulate_grad_batches under the real launcher: K micro-batches of B/K chips take the step of
/// one batch of B, on one rank and on several; settings that cannot split are refused up front.
final class AccumulationTests: XCTestCase {
    func train(_ config: String, ranks: Int, file: StaticString = #filePath, line: UInt = #line) throws -> TrainingRun.Result {
        let r = try TrainingRun.run(["train", "--config", config], ranks: ranks)
        XCTAssertEqual(r.status, 0, "train failed:\n\(r.stdout)\n\(r.stderr)", file: file, line: line)
        return r
    }

    func trainLosses(_ out: String) throws -> [Double] {
        try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["train_loss"] as? Double
        }
    }

    /// Six steps of batch 6: K = 2 and 3 (on 1 and 2 ranks) end within the N-rank ≡ 1-rank bound
    /// (TrainingTests.checkRanksTrainAsOne) of K = 1, and log the same losses, which are the
    /// whole step's sums over its whole valid count. Summing each micro-batch's gradient once per
    /// rank, reducing before the last micro-batch, or normalizing per micro-batch moves the weights
    /// by far more.
    func testMicroBatchesTakeTheStepOfTheWholeBatch() throws {
        let scene = try TrainingRun.scene()
        let settings: [String: Any] = ["lr": 1e-4]
        let reference = TrainingRun.folder("accumulate1") + "/run"
        _ = try train(TrainingRun.config(scene: scene, out: reference, settings), ranks: 0)
        let weights = try TrainingRun.weights(reference + "/last.safetensors")
        let losses = try trainLosses(reference)
        XCTAssertEqual(losses.count, 6)
        for (k, ranks) in [(2, 0), (2, 2), (3, 2)] {
            let out = TrainingRun.folder("accumulate\(k)-\(ranks)") + "/run"
            let r = try train(TrainingRun.config(scene: scene, out: out, settings.merging(["accumulate_grad_batches": k]) { $1 }), ranks: ranks)
            XCTAssertTrue(r.stdout.contains("\(k) micro-batches of \(6 / k) chips"), r.stdout)
            assertClose(try TrainingRun.weights(out + "/last.safetensors"), weights, tolerance: 1e-5, "K = \(k) on \(max(ranks, 1)) rank(s) vs K = 1")
            // The first step's loss comes from the same weights: equal but for the rounding of
            // forwards over other batch sizes (1e-8 of it seen on 2 ranks).
            for (step, (a, b)) in zip(try trainLosses(out), losses).enumerated() {
                XCTAssertEqual(a, b, accuracy: (step == 0 ? 1e-6 : 1e-4) * b, "K = \(k) on \(max(ranks, 1)) rank(s), step \(step + 1)")
            }
        }
    }

    func testSettingsThatCannotSplitAreRefused() throws {
        let scene = try TrainingRun.scene()
        let cases: [([String: Any], String, Int)] = [
            (["accumulate_grad_batches": 0], "'accumulate_grad_batches' is 0; it must be between 1 and 4096", 0),
            (["accumulate_grad_batches": 4], "'accumulate_grad_batches' 4 does not divide 'batch_size' 6", 0),
            (["accumulate_grad_batches": 3], "'accumulate_grad_batches' 3 makes micro-batches of 2 chips, fewer than the 3 ranks", 3),
            (["accumulate_grad_batches": "two"], "'accumulate_grad_batches' must be an integer", 0),
            (["rotate90": 1], "'rotate90' must be true or false", 0),
        ]
        for (extra, message, ranks) in cases {
            let out = TrainingRun.folder("accumulate-bad") + "/run"
            let r = try TrainingRun.run(["train", "--config", TrainingRun.config(scene: scene, out: out, extra)], ranks: ranks)
            XCTAssertEqual(r.status, 1, "\(extra)")
            let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem: error:") }
            XCTAssertEqual(lines.count, 1, "\(extra): \(r.stderr)")
            XCTAssertTrue(lines.first?.contains(message) ?? false, "\(extra): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(extra): the run folder was made")
        }
    }

    /// K changes the steps: a resume with another K is refused naming the key, and a non-finite
    /// loss, known only after the last micro-batch's backward, still stops before the optimizer.
    func testAnotherKIsRefusedOnResumeAndDivergenceStillStops() throws {
        let scene = try TrainingRun.scene()
        let out = TrainingRun.folder("accumulate-resume") + "/run"
        let config = try TrainingRun.config(scene: scene, out: out, ["max_steps": 2])
        _ = try train(config, ranks: 0)
        let r = try TrainingRun.run(["train", "--config", config, "--resume", "--max-steps", "4", "--accumulate-grad-batches", "2"])
        XCTAssertEqual(r.status, 1, r.stdout)
        XCTAssertTrue(r.stderr.contains("different settings for: accumulate_grad_batches"), r.stderr)

        let diverging = TrainingRun.folder("accumulate-diverge") + "/run"
        let d = try TrainingRun.run(["train", "--config", TrainingRun.config(scene: scene, out: diverging, [
            "lr": 1e30, "checkpoint_every": 1, "max_steps": 50, "accumulate_grad_batches": 3,
        ])], ranks: 2)
        XCTAssertEqual(d.status, 3, "\(d.stdout)\n\(d.stderr)")
        let weights = try TrainingRun.weights(diverging + "/last.safetensors")
        XCTAssertTrue(weights.values.allSatisfy { $0.allSatisfy(\.isFinite) }, "the kept checkpoint has non-finite weights")
    }

    /// rotate90 reaches the training chips: two steps with it move the weights otherwise than
    /// without it (validation never turns: RotationTests).
    func testRotate90TurnsTrainingChips() throws {
        let scene = try TrainingRun.scene()
        var runs: [[String: [Float]]] = []
        for rotate in [false, true] {
            let out = TrainingRun.folder("rotate90-\(rotate)") + "/run"
            _ = try train(TrainingRun.config(scene: scene, out: out, ["rotate90": rotate, "max_steps": 2]), ranks: 0)
            runs.append(try TrainingRun.weights(out + "/last.safetensors"))
        }
        XCTAssertNotEqual(runs[0], runs[1], "rotate90 changed no training chip")
    }
}
