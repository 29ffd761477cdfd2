import Foundation

/// A network's weights as a safetensors file (README, Checkpoints): tensors named as the
/// reference's `state_dict()`, the model configuration as JSON under metadata key `deepdem`.
public enum Checkpoint {
    public static let metadataKey = "deepdem"

    /// Writes atomically (see `SafeTensorsWriter.write`); `extraMetadata` cannot replace `deepdem`.
    public static func save(_ net: any Network, to path: String, extraMetadata: [String: String] = [:]) throws {
        var writer = SafeTensorsWriter(metadata: extraMetadata)
        writer.metadata[metadataKey] = try configJSON(net.config)
        for (name, entry) in net.state() {
            switch entry {
            case .parameter(let p): writer.add(name, p.value)
            case .buffer(let t): writer.add(name, t)
            case .counter(let c): writer.add(name, shape: [], int64s: [c.value])
            }
        }
        try writer.write(to: path)
    }

    public static func configJSON(_ config: ModelConfig) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(config), as: UTF8.self)
    }

    /// The model configuration, read from the header only and validated (`ModelConfig.validate`),
    /// so a network can be built from it.
    public static func readConfig(_ path: String) throws -> ModelConfig {
        try config(from: SafeTensors.header(of: path).metadata, path: path)
    }

    /// What `deepdem info` shows: the configuration, the other metadata and every tensor.
    public struct Contents {
        public let config: ModelConfig
        public let metadata: [String: String]
        /// In the file's data order.
        public let tensors: [SafeTensorInfo]
    }

    public static func inspect(_ path: String) throws -> Contents {
        let header = try SafeTensors.header(of: path)
        var other = header.metadata
        other[metadataKey] = nil
        return Contents(config: try config(from: header.metadata, path: path), metadata: other, tensors: header.tensors)
    }

    /// Loads weights into `net`. Everything is checked before anything is copied, so a failed
    /// load leaves the network as it was.
    public static func load(_ path: String, into net: any Network) throws {
        let file = try SafeTensors(contentsOf: path)
        let config = try config(from: file.metadata, path: path)
        guard config.arch == net.config.arch else {
            throw NNError("\(path): checkpoint holds a '\(config.arch)' model, expected '\(net.config.arch)'")
        }
        let state = net.state()
        var byName: [String: SafeTensorInfo] = [:]
        for t in file.tensors { byName[t.name] = t }
        let expected = Set(state.map(\.0))
        let extra = file.tensors.map(\.name).filter { !expected.contains($0) }
        if !extra.isEmpty {
            throw NNError("\(path): unexpected tensor\(extra.count > 1 ? "s" : "") \(list(extra)) for this '\(config.arch)' model")
        }
        for (name, entry) in state {
            guard let t = byName[name] else {
                if case .counter = entry { continue }   // PyTorch checkpoints may drop it
                let missing = state.map(\.0).filter { byName[$0] == nil && !$0.hasSuffix("num_batches_tracked") }
                throw NNError("\(path): missing tensor\(missing.count > 1 ? "s" : "") \(list(missing))")
            }
            guard t.shape == entry.shape else {
                throw NNError("\(path): tensor '\(name)' has shape \(t.shape), expected \(entry.shape)")
            }
            if case .counter = entry { continue }
            guard t.dtype == .f32 else {
                throw NNError("\(path): tensor '\(name)' has dtype \(t.dtype.rawValue), expected F32")
            }
            // One NaN or infinite weight makes every height it touches NaN or infinite.
            let bad = try file.floats(name).reduce(0) { $1.isFinite ? $0 : $0 + 1 }
            if bad > 0 {
                throw NNError("\(path): tensor '\(name)' holds \(bad) NaN or infinite value\(bad == 1 ? "" : "s") of \(t.count); weights must be finite")
            }
        }
        for (name, entry) in state {
            switch entry {
            case .parameter(let p): try file.copyFloats(name, to: p.value.data)
            case .buffer(let b): try file.copyFloats(name, to: b.data)
            case .counter(let c):
                guard let t = byName[name] else { c.value = 0; continue }
                c.value = t.dtype == .i64 ? try file.int64s(name)[0] : Int64(try file.floats(name)[0])
            }
        }
    }

    private static func list(_ names: [String]) -> String {
        let shown = names.prefix(3).map { "'\($0)'" }.joined(separator: ", ")
        return names.count > 3 ? "\(shown) and \(names.count - 3) more" : shown
    }

    static func config(from metadata: [String: String], path: String) throws -> ModelConfig {
        guard let json = metadata[metadataKey] else {
            throw NNError("\(path): no '\(metadataKey)' metadata: not a DeepDEM checkpoint (see README, Checkpoints)")
        }
        let config: ModelConfig
        do {
            config = try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8))
        } catch let DecodingError.keyNotFound(key, context) {
            throw NNError("\(path): '\(metadataKey)' metadata lacks '\(keyPath(context.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(_, context) {
            throw NNError("\(path): '\(metadataKey)' metadata: '\(keyPath(context.codingPath))' has the wrong type")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            throw NNError("\(path): '\(metadataKey)' metadata: '\(keyPath(context.codingPath))' \(context.debugDescription)")
        } catch {
            throw NNError("\(path): '\(metadataKey)' metadata is not valid model-configuration JSON")
        }
        if let keys = DuplicateKeys.first(in: Data(json.utf8)) {
            throw NNError("\(path): '\(metadataKey)' metadata: '\(keys.joined(separator: "."))' appears twice")
        }
        do {
            try config.validate()
        } catch let e as ModelConfigError {
            throw NNError("\(path): '\(metadataKey)' metadata: \(e)")
        }
        return config
    }

    private static func keyPath(_ path: [CodingKey]) -> String {
        path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
}
