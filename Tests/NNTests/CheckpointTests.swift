import Foundation
import NN
import XCTest

final class CheckpointTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "checkpoint-tests-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func values(_ net: TinyNetwork) -> [Float] {
        net.parameters.parameters.flatMap(\.value.array) + net.runningMean.array + net.runningVar.array
    }

    /// Writes `tensors` with the `deepdem` metadata of `config` (a hand-made checkpoint).
    func write(_ name: String, config: String?, _ tensors: [(String, [Int], [Float])], counter: [Int]? = nil) throws -> String {
        var w = SafeTensorsWriter()
        if let config { w.metadata["deepdem"] = config }
        for (n, shape, v) in tensors { w.add(n, shape: shape, floats: v) }
        if let counter { w.add("encoder.0.0.1.num_batches_tracked", shape: counter, int64s: [Int64](repeating: 1, count: counter.reduce(1, *))) }
        let path = dir + "/" + name
        try w.write(to: path)
        return path
    }

    func tinyTensors(_ net: TinyNetwork) -> [(String, [Int], [Float])] {
        net.state().compactMap { name, entry in
            switch entry {
            case .parameter(let p): return (name, p.shape, p.value.array)
            case .buffer(let t): return (name, t.shape, t.array)
            case .counter: return nil
            }
        }
    }

    func assertLoadFails(_ path: String, into net: TinyNetwork, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        let before = values(net)
        let count = net.batches.value
        XCTAssertThrowsError(try Checkpoint.load(path, into: net), file: file, line: line) {
            XCTAssertEqual("\($0)", expected, file: file, line: line)
        }
        XCTAssertEqual(values(net), before, "a failed load changed the network", file: file, line: line)
        XCTAssertEqual(net.batches.value, count, file: file, line: line)
    }

    func testRoundTrip() throws {
        let a = TinyNetwork()
        a.fill(seed: 3)
        let path = dir + "/a.safetensors"
        try Checkpoint.save(a, to: path, extraMetadata: ["step": "120"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["a.safetensors"])

        let b = TinyNetwork()
        XCTAssertNotEqual(values(b), values(a))
        try Checkpoint.load(path, into: b)
        XCTAssertEqual(values(b), values(a))
        XCTAssertEqual(b.batches.value, 30)
        XCTAssertEqual(try Checkpoint.readConfig(path), a.config)

        let contents = try Checkpoint.inspect(path)
        XCTAssertEqual(contents.config, a.config)
        XCTAssertEqual(contents.metadata, ["step": "120"])
        XCTAssertEqual(contents.tensors.map(\.name), a.state().map(\.0))
        XCTAssertEqual(contents.tensors.last?.dtype, .i64)
        XCTAssertEqual(contents.tensors.first?.shape, [4, 3, 3, 3])

        // The metadata is the README's JSON with snake_case keys.
        let json = try XCTUnwrap(SafeTensors.header(of: path).metadata["deepdem"])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["chip_size"] as? Int, 16)
        let unet = try XCTUnwrap(object["unet"] as? [String: Any])
        XCTAssertEqual(unet["n_input_channels"] as? Int, 3)
        XCTAssertEqual(unet["do_BN"] as? Bool, false)
    }

    func testSavingOverAnExistingCheckpointReplacesIt() throws {
        let path = dir + "/last.safetensors"
        let a = TinyNetwork()
        a.fill(seed: 1)
        try Checkpoint.save(a, to: path)
        a.fill(seed: 2)
        try Checkpoint.save(a, to: path)
        let b = TinyNetwork()
        try Checkpoint.load(path, into: b)
        XCTAssertEqual(values(b), values(a))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["last.safetensors"])
    }

    func testWrongShapeNamesTensorAndShapes() throws {
        let path = dir + "/wide.safetensors"
        try Checkpoint.save(TinyNetwork(channels: 8), to: path)
        let net = TinyNetwork(channels: 4)
        net.fill(seed: 5)
        assertLoadFails(path, into: net, "\(path): tensor 'encoder.0.0.0.weight' has shape [8, 3, 3, 3], expected [4, 3, 3, 3]")
    }

    func testMissingAndExtraTensors() throws {
        let net = TinyNetwork()
        net.fill(seed: 1)
        let config = try Checkpoint.configJSON(net.config)
        var tensors = tinyTensors(net)
        tensors.remove(at: 1)
        let missing = try write("missing.safetensors", config: config, tensors)
        assertLoadFails(missing, into: net, "\(missing): missing tensor 'encoder.0.0.0.bias'")

        let extra = try write("extra.safetensors", config: config, tinyTensors(net) + [("decoder.0.weight", [1], [0]), ("x", [], [0])])
        assertLoadFails(extra, into: net, "\(extra): unexpected tensors 'decoder.0.weight', 'x' for this 'unet' model")

        let asInt = dir + "/int.safetensors"
        var w = SafeTensorsWriter(metadata: ["deepdem": config])
        for (n, shape, v) in tinyTensors(net) {
            if n.hasSuffix("running_var") { w.add(n, shape: shape, int64s: v.map { Int64($0) }) } else { w.add(n, shape: shape, floats: v) }
        }
        try w.write(to: asInt)
        assertLoadFails(asInt, into: net, "\(asInt): tensor 'encoder.0.0.1.running_var' has dtype I64, expected F32")
    }

    func testBatchCounterMayBeAbsentOrFloat() throws {
        let a = TinyNetwork()
        a.fill(seed: 2)
        let config = try Checkpoint.configJSON(a.config)
        let absent = try write("absent.safetensors", config: config, tinyTensors(a))
        let b = TinyNetwork()
        b.batches.value = 9
        try Checkpoint.load(absent, into: b)
        XCTAssertEqual(values(b), values(a))
        XCTAssertEqual(b.batches.value, 0)

        let float = try write("float.safetensors", config: config,
                              tinyTensors(a) + [("encoder.0.0.1.num_batches_tracked", [], [17])])
        try Checkpoint.load(float, into: b)
        XCTAssertEqual(b.batches.value, 17)

        let vector = try write("vector.safetensors", config: config, tinyTensors(a), counter: [2])
        assertLoadFails(vector, into: b, "\(vector): tensor 'encoder.0.0.1.num_batches_tracked' has shape [2], expected []")
    }

    func testMetadataProblems() throws {
        let net = TinyNetwork()
        let tensors = tinyTensors(net)

        let none = try write("none.safetensors", config: nil, tensors)
        assertLoadFails(none, into: net, "\(none): no 'deepdem' metadata: not a DeepDEM checkpoint (see README, Checkpoints)")

        let unknown = try write("unknown.safetensors", config: #"{"arch": "vit", "bands": ["asp_dsm"], "target": "lidar_data", "chip_size": 16, "gsf": 1}"#, tensors)
        let message = "\(unknown): 'deepdem' metadata: 'arch' is 'vit'; it must be one of unet, resnet18-unet, resnet34-unet, resnet50-unet"
        assertLoadFails(unknown, into: net, message)
        XCTAssertThrowsError(try Checkpoint.readConfig(unknown)) { XCTAssertEqual("\($0)", message) }

        let other = try write("other.safetensors", config: #"{"arch": "resnet18-unet", "bands": ["asp_dsm", "ndvi", "nodata_mask"], "target": "lidar_data", "chip_size": 32, "gsf": 1, "encoder": {"name": "resnet18"}}"#, tensors)
        assertLoadFails(other, into: net, "\(other): checkpoint holds a 'resnet18-unet' model, expected 'unet'")
        XCTAssertEqual(try Checkpoint.readConfig(other).encoder, EncoderConfig(name: "resnet18", inChannels: 3))

        let noUNet = try write("nounet.safetensors", config: #"{"arch": "unet", "bands": ["asp_dsm"], "target": "lidar_data", "chip_size": 16, "gsf": 1}"#, tensors)
        XCTAssertThrowsError(try Checkpoint.readConfig(noUNet)) {
            XCTAssertEqual("\($0)", "\(noUNet): 'deepdem' metadata: 'unet' is missing; a 'unet' model needs it")
        }
        let lacking = try write("lacking.safetensors", config: #"{"arch": "unet", "bands": ["asp_dsm"], "chip_size": 16, "gsf": 1, "unet": {}}"#, tensors)
        XCTAssertThrowsError(try Checkpoint.readConfig(lacking)) {
            XCTAssertEqual("\($0)", "\(lacking): 'deepdem' metadata lacks 'target'")
        }
        let typed = try write("typed.safetensors", config: #"{"arch": "unet", "bands": ["asp_dsm"], "target": "lidar_data", "chip_size": "big", "gsf": 1, "unet": {"n_input_channels": 1}}"#, tensors)
        XCTAssertThrowsError(try Checkpoint.readConfig(typed)) {
            XCTAssertEqual("\($0)", "\(typed): 'deepdem' metadata: 'chip_size' has the wrong type")
        }
        let twice = try write("twice.safetensors", config: try Checkpoint.configJSON(net.config).replacingOccurrences(of: #""gsf":"#, with: #""gsf":0,"gsf":"#), tensors)
        XCTAssertThrowsError(try Checkpoint.readConfig(twice)) {
            XCTAssertEqual("\($0)", "\(twice): 'deepdem' metadata: 'gsf' appears twice")
        }
        let garbage = try write("garbage.safetensors", config: "{arch", tensors)
        XCTAssertThrowsError(try Checkpoint.readConfig(garbage)) {
            XCTAssertEqual("\($0)", "\(garbage): 'deepdem' metadata is not valid model-configuration JSON")
        }
    }

    func testFileProblemsSurfaceThroughLoad() throws {
        let path = dir + "/t.safetensors"
        try Checkpoint.save(TinyNetwork(), to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count - 3).write(to: URL(fileURLWithPath: path))
        let net = TinyNetwork()
        XCTAssertThrowsError(try Checkpoint.load(path, into: net)) {
            XCTAssertTrue("\($0)".hasPrefix("\(path): truncated: tensor 'encoder.0.0.1.num_batches_tracked'"), "\($0)")
        }
        XCTAssertThrowsError(try Checkpoint.readConfig(dir + "/nope.safetensors")) {
            XCTAssertEqual("\($0)", "\(self.dir!)/nope.safetensors: cannot read: No such file or directory")
        }
    }
}
