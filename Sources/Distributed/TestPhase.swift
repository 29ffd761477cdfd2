import Data
import Foundation
import NN
import Primitives

/// One test region: a whole test scene, or the test stripe of a scene of a data list.
struct TestTarget: Equatable {
    let folder: String
    /// Nil for a whole scene.
    let window: PixelWindow?
}

/// The metrics of one test region in `test.json`: the initial DSM (`asp_dsm`) and the refined one
/// against the scene's target over the same pixels, as `deepdem evaluate` gives them.
public struct TestedScene: Codable, Equatable, Sendable {
    public var scene: String
    public var window: PixelWindow?
    public var output: String
    public var initial: ErrorMetrics
    public var refined: ErrorMetrics

    enum CodingKeys: String, CodingKey { case scene, window, output, initial, refined }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(scene, forKey: .scene)
        try c.encode(window, forKey: .window)   // null for a whole scene
        try c.encode(output, forKey: .output)
        try c.encode(initial, forKey: .initial)
        try c.encode(refined, forKey: .refined)
    }
}

public struct TestMetrics: Codable, Equatable, Sendable {
    public var initial: ErrorMetrics
    public var refined: ErrorMetrics
}

/// `RUN/test.json`: which checkpoint was tested, each test region, and every test pixel pooled.
public struct TestReport: Codable, Equatable, Sendable {
    public var checkpoint: String
    public var step: Int
    /// The fold of a `split` run; nil without stripes.
    public var fold: Int?
    public var scenes: [TestedScene]
    public var overall: TestMetrics

    enum CodingKeys: String, CodingKey { case checkpoint, step, fold, scenes, overall }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(checkpoint, forKey: .checkpoint)
        try c.encode(step, forKey: .step)
        try c.encode(fold, forKey: .fold)   // null without stripes
        try c.encode(scenes, forKey: .scenes)
        try c.encode(overall, forKey: .overall)
    }
}

/// The end of a run with test data (README, Training): rank 0 refines each test region's scene
/// with the tested checkpoint into `RUN/test/`, evaluates the region against the scene's target,
/// and writes `test.json` and a `{"test": …}` line of metrics.jsonl. Test scenes are opened here
/// for the first time.
enum TestPhase {
    static func run(_ targets: [TestTarget], checkpoint: String, step: Int, fold: Int?, config: TrainingConfig,
                    folder: RunFolder, events: (TrainingEvent) -> Void) throws -> TestReport {
        let refinement = try Refinement(checkpoint: checkpoint)
        let outputs = folder.file("test")
        do { try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: true) } catch {
            throw TrainingError("cannot create \(outputs): \(error.localizedDescription)")
        }
        var used = Set<String>()
        var scenes: [TestedScene] = []
        var evaluators: [Evaluator] = []
        for target in targets {
            let scene: Scene
            do {
                scene = try Scene(folder: target.folder, bands: config.bands, target: config.target)
            } catch {
                throw TrainingError("test scene \(target.folder) cannot be tested with the run's bands and target: \(error)")
            }
            let base = URL(fileURLWithPath: target.folder).standardized.lastPathComponent
            var name = base
            var k = 2
            while used.contains(name) { name = "\(base)-\(k)"; k += 1 }
            used.insert(name)
            let output = "test/\(name).tif"
            // `deepdem refine`'s defaults: stride half a chip, 8 tiles a batch.
            var tiler = Tiler(chipSize: refinement.config.chipSize, overwrite: true)
            tiler.threads = ComputeThreads.count
            try refinement.refine(scene, tiler: tiler, output: folder.file(output))
            var evaluator = Evaluator(prediction: folder.file(output), truth: Scene.file(target.folder, config.target),
                                      initial: Scene.file(target.folder, Band.aspDSM))
            evaluator.window = target.window
            let all = try evaluator.run().all
            let tested = TestedScene(scene: target.folder, window: target.window, output: output, initial: all.initial!, refined: all.refined)
            events(.tested(tested))
            scenes.append(tested)
            evaluators.append(evaluator)
        }
        let pooled = try Evaluator.pooled(evaluators).all
        let report = TestReport(checkpoint: URL(fileURLWithPath: checkpoint).lastPathComponent, step: step, fold: fold, scenes: scenes,
                                overall: TestMetrics(initial: pooled.initial!, refined: pooled.refined))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let path = folder.file("test.json")
        try StagedOutput.write(try encoder.encode(report), to: path)
        let line = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report))
        try folder.appendMetrics(["test": line])
        events(.testWritten(path: path, report: report))
        return report
    }
}
