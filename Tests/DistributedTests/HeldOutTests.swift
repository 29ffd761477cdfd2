import Data
import Foundation
import NN
import XCTest

/// Held-out scenes, stripes and folds, and the test phase that ends a run with test data, under
/// the real launcher: test.json holds what `deepdem refine` + `deepdem evaluate` give by hand, test
/// scenes are not read before the test phase, stripes with a fold train alike on 1 and 2 ranks.
final class HeldOutTests: XCTestCase {
    /// A synthetic scene of its own seed, made once per process.
    nonisolated(unsafe) static var made: [Int: String] = [:]
    static func scene(seed: Int, size: Int = 160) throws -> String {
        if let s = made[seed * 10_000 + size] { return s }
        let path = TrainingRun.folder("site\(seed)") + "/site\(seed)"
        try SyntheticScene(width: size, height: size, seed: UInt64(seed)).write(to: path)
        made[seed * 10_000 + size] = path
        return path
    }

    func json(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any], path)
    }

    func deepdem(_ args: [String]) throws -> TrainingRun.Result {
        let r = try TrainingRun.run(args)
        XCTAssertEqual(r.status, 0, "deepdem \(args.joined(separator: " ")):\n\(r.stdout)\n\(r.stderr)")
        return r
    }

    func assertMetrics(_ a: Any?, _ b: Any?, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let a = a as? [String: Any], let b = b as? [String: Any] else { return XCTFail("\(what): not metrics", file: file, line: line) }
        XCTAssertEqual(a["count"] as? Int, b["count"] as? Int, what, file: file, line: line)
        for key in ["bias", "mae", "rmse", "median", "nmad", "le90"] {
            let x = a[key] as? Double ?? .nan, y = b[key] as? Double ?? .nan
            XCTAssertEqual(x, y, accuracy: 1e-6 * max(1, abs(y)), "\(what).\(key)", file: file, line: line)
        }
    }

    /// Train on one site, validate on a second, test on a third (2 ranks): test.json's numbers are
    /// those of refining the third with best.safetensors and evaluating it by hand, the refined
    /// raster is the one refine writes, and metrics.jsonl ends with the same test line.
    func testHeldOutSitesEndWithTheTestThatRefineAndEvaluateGive() throws {
        let (train, val, test) = (try Self.scene(seed: 1), try Self.scene(seed: 2), try Self.scene(seed: 3))
        let out = TrainingRun.folder("sites") + "/run"
        let config = try TrainingRun.config(scene: train, out: out, ["data": ["train": [train], "val": [val], "test": [test]],
                                                                     "gsf": "auto", "max_steps": 10])
        let r = try TrainingRun.run(["train", "--config", config], ranks: 2)
        XCTAssertEqual(r.status, 0, "\(r.stdout)\n\(r.stderr)")
        XCTAssertTrue(r.stdout.contains("test: \(test)"), r.stdout)

        let report = try json(out + "/test.json")
        XCTAssertEqual(report["checkpoint"] as? String, "best.safetensors")
        XCTAssertTrue(report["fold"] is NSNull, "\(report)")
        // The best step is the first lowest validation loss in metrics.jsonl.
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let validations = lines.compactMap { l in (l["val_loss"] as? Double).map { (l["step"] as! Int, $0) } }
        let best = validations.reduce(validations[0]) { $1.1 < $0.1 ? $1 : $0 }
        XCTAssertEqual(report["step"] as? Int, best.0)
        let scenes = try XCTUnwrap(report["scenes"] as? [[String: Any]])
        XCTAssertEqual(scenes.count, 1)
        XCTAssertEqual(scenes[0]["scene"] as? String, test)
        XCTAssertTrue(scenes[0]["window"] is NSNull)
        XCTAssertEqual(scenes[0]["output"] as? String, "test/site3.tif")

        let hand = TrainingRun.folder("sites-hand") + "/refined.tif"
        _ = try deepdem(["refine", "--checkpoint", out + "/best.safetensors", "--data", test, "--out", hand])
        let evaluation = try deepdem(["evaluate", "--prediction", hand, "--truth", Scene.file(test, Band.lidarDSM),
                                      "--initial", Scene.file(test, Band.aspDSM), "--json"])
        let byHand = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(evaluation.stdout.utf8)) as? [String: Any])
        assertMetrics(scenes[0]["initial"], byHand["initial"], "initial")
        assertMetrics(scenes[0]["refined"], byHand["refined"], "refined")
        let overall = try XCTUnwrap(report["overall"] as? [String: Any])
        assertMetrics(overall["refined"], byHand["refined"], "overall refined (one scene)")
        let ours = try Raster(path: out + "/test/site3.tif"), theirs = try Raster(path: hand)
        func pixels(_ r: Raster) throws -> [Float] {
            var v = [Float](repeating: 0, count: r.grid.pixelCount)
            try v.withUnsafeMutableBufferPointer { try r.read(x: 0, y: 0, width: r.grid.width, height: r.grid.height, into: $0.baseAddress!) }
            return v
        }
        XCTAssertEqual(try pixels(ours).map(\.bitPattern), try pixels(theirs).map(\.bitPattern), "the test raster is refine's")

        let testLine = try XCTUnwrap(lines.last?["test"] as? [String: Any], "metrics.jsonl ends with the test line")
        assertMetrics((testLine["overall"] as? [String: Any])?["refined"], overall["refined"], "metrics.jsonl test line")
        XCTAssertEqual(testLine["step"] as? Int, best.0)
    }

    /// A test scene whose rasters are garbage when training starts, replaced by good ones once the
    /// first checkpoint exists: the run trains, then tests the good scene. A test scene that lacks a
    /// band of the run fails the test phase with one line naming it.
    func testTestScenesAreNotReadBeforeTheTestPhase() throws {
        let (train, val, good) = (try Self.scene(seed: 1), try Self.scene(seed: 2), try Self.scene(seed: 3))
        let test = TrainingRun.folder("unread") + "/later"
        try FileManager.default.createDirectory(atPath: test, withIntermediateDirectories: true)
        let bands = Scene.bandsPresent(in: good)
        for band in bands { try Data("not a GeoTIFF yet".utf8).write(to: URL(fileURLWithPath: Scene.file(test, band))) }
        let out = TrainingRun.folder("unread-run") + "/run"
        let config = try TrainingRun.config(scene: train, out: out, ["data": ["train": [train], "val": [val], "test": [test]],
                                                                     "max_steps": 400, "log_every": 50])
        let (p, stdout, stderr) = try TrainingRun.start(["train", "--config", config])
        nonisolated(unsafe) var o = Data(), e = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { o = stdout.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { e = stderr.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        while !FileManager.default.fileExists(atPath: out + "/last.safetensors") && p.isRunning { usleep(5_000) }
        for band in bands {
            let staged = Scene.file(test, band) + ".new"
            try FileManager.default.copyItem(atPath: Scene.file(good, band), toPath: staged)
            XCTAssertEqual(rename(staged, Scene.file(test, band)), 0)
        }
        XCTAssertTrue(p.isRunning && !FileManager.default.fileExists(atPath: out + "/test.json"),
                      "training ended before the test scene was made good; the test proves nothing")
        group.wait()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, String(decoding: o, as: UTF8.self) + String(decoding: e, as: UTF8.self))
        let scenes = try XCTUnwrap(try json(out + "/test.json")["scenes"] as? [[String: Any]])
        XCTAssertEqual(scenes.first?["scene"] as? String, test)
        XCTAssertGreaterThan((scenes.first?["refined"] as? [String: Any])?["count"] as? Int ?? 0, 10_000)

        let partial = TrainingRun.folder("no-ndvi") + "/site"
        try FileManager.default.copyItem(atPath: good, toPath: partial)
        try FileManager.default.removeItem(atPath: Scene.file(partial, Band.ndvi))
        let out2 = TrainingRun.folder("no-ndvi-run") + "/run"
        let r = try TrainingRun.run(["train", "--config", TrainingRun.config(scene: train, out: out2,
                                                                             ["data": ["train": [train], "test": [partial]]])], ranks: 2)
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem: error:") }
        XCTAssertEqual(errors.count, 1, r.stderr)
        XCTAssertTrue(errors.first?.contains("test scene \(partial)") ?? false, r.stderr)
        XCTAssertTrue(errors.first?.contains("band ndvi") ?? false, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out2 + "/last.safetensors"), "trained before testing")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out2 + "/test.json"))
    }

    /// Stripes with a fold (validation stripe 4, test stripe 0 of 5), gsf estimated on the training
    /// stripes: 2 ranks train as 1 (the bound of TrainingTests.checkRanksTrainAsOne), and both test
    /// the same stripe.
    func testStripesWithAFoldTrainAlikeOnOneAndTwoRanks() throws {
        let scene = try TrainingRun.scene()
        var weights: [[String: [Float]]] = []
        var reports: [[String: Any]] = []
        for ranks in [1, 2] {
            let out = TrainingRun.folder("stripes\(ranks)") + "/run"
            let config = try TrainingRun.config(scene: scene, out: out, ["split": ["stripes": 5, "axis": "x", "val": 3, "test": 4],
                                                                         "fold": 1, "gsf": "auto", "lr": 1e-4])
            let r = try TrainingRun.run(["train", "--config", config], ranks: ranks)
            XCTAssertEqual(r.status, 0, "\(r.stdout)\n\(r.stderr)")
            weights.append(try TrainingRun.weights(out + "/last.safetensors"))
            reports.append(try json(out + "/test.json"))
        }
        assertClose(weights[1], weights[0], tolerance: 1e-5, "2 ranks vs 1")
        for report in reports {
            XCTAssertEqual(report["fold"] as? Int, 1)
            let window = (report["scenes"] as? [[String: Any]])?.first?["window"] as? [String: Int]
            XCTAssertEqual(window, ["x": 0, "y": 0, "width": 32, "height": 160])
        }
    }

    /// Bad held-out settings: one line on stderr naming the key or folder, exit 1, before training,
    /// on one rank or several alike.
    func testBadHeldOutSettings() throws {
        let (a, b) = (try Self.scene(seed: 1), try Self.scene(seed: 2))
        let tiny = try Self.scene(seed: 4, size: 24)
        let noNDVI = TrainingRun.folder("bad-bands") + "/site"
        try FileManager.default.copyItem(atPath: b, toPath: noNDVI)
        try FileManager.default.removeItem(atPath: Scene.file(noNDVI, Band.ndvi))
        let out = TrainingRun.folder("bad-held-out") + "/run"
        let stripes: [String: Any] = ["stripes": 5, "axis": "x", "val": 3, "test": 4]
        let inside = out + "/test/site"
        try FileManager.default.createDirectory(atPath: inside, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Scene.file(b, Band.aspDSM), toPath: Scene.file(inside, Band.aspDSM))
        let cases: [([String: Any], String, Int)] = [
            (["data": ["train": [a], "val": [a]]], "'data': \(a) is both a train and a val scene", 0),
            (["data": ["train": [a], "test": [b, a + "/."]]], "is both a train and a test scene", 2),
            (["data": ["train": [a], "test": [] as [String]]], "'data.test' lists no scene", 0),
            (["data": ["val": [a]]], "'data.train' is missing", 0),
            (["data": ["train": [a], "tset": [b]]], "unknown key 'data.tset'", 0),
            (["data": ["train": [a], "val": [tiny]]], "\(tiny): chip of 32 px is larger than the validation region", 2),
            (["split": ["stripes": 6, "val": 3]], "the validation stripe 3 of 'split' (fold 0) is 26×160 px, smaller than a chip of 32 px", 0),
            (["split": ["stripes": 5, "val": 0, "test": 5]], "'split.test' is 5; it must be a stripe between 0 and 4", 0),
            (["split": stripes, "fold": 5], "'fold' is 5; it must be between 0 and 4", 2),
            (["fold": 1], "'fold' is 1; it rotates the stripes of 'split'", 0),
            (["split": stripes, "train_split": 0.8], "'split' and 'train_split' both choose the held-out pixels", 0),
            (["split": ["stripes": 1, "val": 0]], "'split.stripes' is 1; it must be between 2 and 10000", 0),
            (["split": ["stripes": 4, "val": 2, "test": 2]], "'split.val' and 'split.test' are both stripe 2", 0),
            (["split": ["stripes": 4, "axis": "z", "val": 2]], "'split.axis' is 'z'; it must be x or y", 0),
            (["split": ["stripes": 4]], "'split' needs 'stripes' and 'val'", 0),
            (["split": ["stripes": 4, "val": 1, "fold": 2]], "unknown key 'split.fold'", 0),
            (["data": ["train": [a], "val": [b]], "split": stripes], "'split' cuts the scenes of a data list", 0),
            (["data": ["train": [a], "val": [b]], "train_split": 0.7], "'train_split' splits the scenes of a data list", 0),
            (["data": ["train": [a], "val": [noNDVI]]], "\(Scene.file(noNDVI, Band.ndvi)): missing (band ndvi is needed)", 2),
            (["data": ["train": [a], "test": [out + "/absent"]]], "\(out)/absent: no such scene folder (a test scene of 'data')", 2),
            (["data": ["train": [a], "test": [inside]]], "which this command reads", 0),
            (["data": 5], "'data' must be a scene folder, a list of them, or roles", 0),
        ]
        try assertRefusedBeforeTraining(scene: a, out: out, cases, status: 1)
    }
}
