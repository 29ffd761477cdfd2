import Foundation
import NN
import Primitives
import XCTest

/// Seeded fuzzing of everything that reads a checkpoint: thousands of mutated `deepdem` metadata
/// objects and damaged safetensors headers must each give a one-line error naming the file, or a
/// configuration that really builds. A crash ends the test process, which is the failure.
/// The same readers under libFuzzer: fuzz/README.md.
final class CheckpointFuzzTests: XCTestCase {
    var dir: String!
    var path: String { dir + "/fuzz.safetensors" }
    var resnetsBuilt = 0

    override func setUpWithError() throws {
        // Thousands of rewrites of one file: in memory where there is a tmpfs.
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm/" : NSTemporaryDirectory()
        dir = base + "checkpoint-fuzz-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    nonisolated(unsafe) static let unet: [String: Any] = [
        "arch": "unet", "bands": ["asp_dsm", "ndvi"], "target": "lidar_data", "chip_size": 16, "gsf": 2.5,
        "unet": ["n_input_channels": 2, "depth": 2, "start_kernel": 4, "max_filter_depth": 8, "do_BN": true,
                 "bias_conv_layer": false, "outer_skip": true, "outer_skip_BN": true, "up_mode": "transpose"],
    ]
    nonisolated(unsafe) static let resnet: [String: Any] = [
        "arch": "resnet18-unet", "bands": ["asp_dsm"], "target": "lidar_data", "chip_size": 32, "gsf": 2.5,
        "encoder": ["name": "resnet18", "in_channels": 1, "decoder_channels": [16, 16, 8, 8, 4]],
    ]
    static let keys = ["arch", "bands", "target", "chip_size", "gsf", "unet", "encoder"]
    static let unetKeys = ["n_input_channels", "depth", "start_kernel", "max_filter_depth", "do_BN", "bias_conv_layer",
                           "outer_skip", "outer_skip_BN", "up_mode"]
    static let encoderKeys = ["name", "in_channels", "decoder_channels"]

    nonisolated(unsafe) static let numbers: [Any] = [0, 1, -1, 2, 3, 4, 5, 8, 12, 13, 16, 31, 32, 33, 64, 512, 1024, 1025, 4096, 4097, 70,
                                 1 << 31, 1 << 40, -(1 << 40), Int.max, Int.min, 0.5, -2.5, 1e-7, 1e6, 1e7, 1e308,
                                 Double.leastNonzeroMagnitude]

    /// Numbers near every boundary the checks draw, or (less often) a value of any JSON type.
    func value(_ rng: inout SplitMix64, depth: Int = 0) -> Any {
        switch rng.next() % 10 {
        case 0: return ["unet", "resnet18", "resnet34", "resnet18-unet", "transpose", "asp_dsm", "", "é\u{0}"].randomElement(using: &rng)!
        case 1: return Bool.random(using: &rng)
        case 2: return depth > 2 ? NSNull() : (0..<Int.random(in: 0...6, using: &rng)).map { _ in value(&rng, depth: depth + 1) }
        case 3: return depth > 2 ? NSNull() : ["depth": value(&rng, depth: depth + 1)]
        default: return Self.numbers.randomElement(using: &rng)!
        }
    }

    func mutated(_ rng: inout SplitMix64) -> [String: Any] {
        var config = Bool.random(using: &rng) ? Self.unet : Self.resnet
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            switch rng.next() % 8 {
            case 0: config[Self.keys.randomElement(using: &rng)!] = nil
            case 1: config[Self.keys.randomElement(using: &rng)!] = value(&rng)
            case 2: config["bands"] = (0..<Int.random(in: 0...70, using: &rng)).map { "b\($0)" }
            case 3: config["arch"] = ModelConfig.architectures.randomElement(using: &rng)!
            default:
                let nested = config["unet"] != nil ? "unet" : "encoder"
                var inner = config[nested] as? [String: Any] ?? [:]
                let key = (nested == "unet" ? Self.unetKeys : Self.encoderKeys).randomElement(using: &rng)!
                if key == "decoder_channels", var list = inner[key] as? [Any], !list.isEmpty {
                    list[Int.random(in: 0..<list.count, using: &rng)] = value(&rng)
                    inner[key] = Bool.random(using: &rng) ? list : Array(list.dropLast())
                } else {
                    inner[key] = rng.next() % 8 == 0 ? nil : value(&rng)
                }
                config[nested] = inner
            }
        }
        return config
    }

    /// Every reader on the file at `path`: an error must be one line naming the file; a
    /// configuration the reader accepts must build.
    func readEverything(_ context: @autoclosure () -> String) {
        func check(_ body: () throws -> Void) {
            do { try body() } catch {
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix(path + ": ") && !text.contains("\n"), "\(context()): \(text)")
            }
        }
        check { _ = try SafeTensors(contentsOf: path) }
        check { _ = try Checkpoint.inspect(path) }
        check {
            let config = try Checkpoint.readConfig(path)
            // Validated configurations build. Only small U-Nets and a few ResNets (11 M parameters
            // whatever their decoder) are built, to stay fast.
            if config.arch == "unet" {
                guard config.chipSize <= 64, config.unet!.maxFilterDepth <= 64 else { return }
            } else {
                guard config.chipSize <= 64, resnetsBuilt < 10 else { return }
                resnetsBuilt += 1
            }
            do {
                try Checkpoint.load(path, into: try makeNetwork(config, seed: nil))
            } catch let e as ModelConfigError {
                XCTFail("\(context()): readConfig accepted what makeNetwork refuses: \(e)")
            }
        }
    }

    func testMutatedMetadata() throws {
        var rng = SplitMix64(seed: 14)
        for i in 0..<2000 {
            let config = mutated(&rng)
            let json = String(decoding: try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]), as: UTF8.self)
            // As SafeTensorsWriter lays it out, without its fsync per file.
            var header = [UInt8](try JSONSerialization.data(withJSONObject: ["__metadata__": ["deepdem": json]]))
            while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
            let file = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
            try Data(file).write(to: URL(fileURLWithPath: path))
            readEverything("case \(i): \(json)")
        }
    }

    /// The file with its header rewritten: an entry's dtype, shape or offsets changed, or an
    /// entry (or the metadata) written a second time under the same name.
    func reshaped(_ header: [String: Any], names: [String], data: ArraySlice<UInt8>, _ rng: inout SplitMix64) -> [UInt8] {
        var header = header
        let name = names.randomElement(using: &rng)!
        var entry = header[name] as! [String: Any]
        switch rng.next() % 4 {
        case 0: entry["dtype"] = ["F32", "I64", "F16", "BF16", "", 4].randomElement(using: &rng)!
        case 1: entry["shape"] = (0..<Int.random(in: 0...4, using: &rng)).map { _ in Self.numbers.randomElement(using: &rng)! }
        case 2: entry["data_offsets"] = (0..<Int.random(in: 1...3, using: &rng)).map { _ in
            [0, 4, 8, 16, 64, 1 << 40, -4, Int.max, data.count, data.count + 4].randomElement(using: &rng)! }
        default: break
        }
        header[name] = entry
        var json = String(decoding: try! JSONSerialization.data(withJSONObject: header), as: UTF8.self)
        if rng.next() % 3 == 0 {
            let twice = Bool.random(using: &rng) ? name : "__metadata__"
            let again = String(decoding: try! JSONSerialization.data(withJSONObject: header[twice]!), as: UTF8.self)
            json = String(json.dropLast()) + ", \"\(twice)\": \(again)}"
        }
        let bytes = Array(json.utf8)
        return withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { Array($0) } + bytes + data
    }

    func testDamagedHeaders() throws {
        // A real checkpoint (weights included) to damage: small enough to rewrite thousands of times.
        let config = try JSONDecoder().decode(ModelConfig.self, from: JSONSerialization.data(withJSONObject: Self.unet))
        let good = dir + "/good.safetensors"
        try Checkpoint.save(try makeNetwork(config, seed: 1), to: good)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: good)))
        let headerEnd = 8 + bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.1) << (8 * $1.0) }
        let digits = Array("0123456789-".utf8), structural = Array("{}[]\":,\\ ".utf8)
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])) as! [String: Any]
        let names = header.keys.filter { $0 != "__metadata__" }.sorted()
        var rng = SplitMix64(seed: 2014)
        for i in 0..<3000 {
            var b = i % 2 == 0 ? bytes : reshaped(header, names: names, data: bytes[headerEnd...], &rng)
            for _ in 0..<Int.random(in: i % 2 == 0 ? 1...4 : 0...1, using: &rng) {
                let headerEnd = min(headerEnd, b.count)
                guard headerEnd > 9 else { break }
                switch rng.next() % 6 {
                case 0:   // a digit of an offset, a shape or the length changes
                    let at = Int.random(in: 8..<headerEnd, using: &rng)
                    if digits.contains(b[at]) { b[at] = digits.randomElement(using: &rng)! }
                case 1: b[Int.random(in: 8..<headerEnd, using: &rng)] = structural.randomElement(using: &rng)!
                case 2: b[Int.random(in: 0..<8, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 3: b.removeLast(Int.random(in: 0..<b.count, using: &rng))
                case 4:   // a header entry written twice
                    let at = Int.random(in: 9..<headerEnd, using: &rng)
                    let piece = b[at..<min(at + Int.random(in: 1...80, using: &rng), headerEnd)]
                    b.insert(contentsOf: piece, at: at)
                default: b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            try Data(b).write(to: URL(fileURLWithPath: path))
            readEverything("case \(i)")
        }
    }
}
