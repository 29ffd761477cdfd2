import Foundation
import Primitives

// safetensors stores little-endian data and this code copies it byte for byte.
#if _endian(big)
#error("SafeTensors assumes a little-endian host")
#endif

/// The element types DeepDEM reads and writes: F32 for weights, I64 for BatchNorm's
/// `num_batches_tracked`.
public enum SafeTensorDType: String, Sendable {
    case f32 = "F32"
    case i64 = "I64"

    public var byteSize: Int {
        switch self {
        case .f32: return 4
        case .i64: return 8
        }
    }
}

/// One tensor's header entry; `begin`/`end` are byte offsets in the data section.
public struct SafeTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorDType
    public let shape: [Int]
    public let begin: Int
    public let end: Int
    public var count: Int { shape.reduce(1, *) }
}

/// A safetensors file: 8-byte little-endian header length, a JSON header, then the data.
/// See https://github.com/huggingface/safetensors (format section).
public struct SafeTensors {
    public let path: String
    public let metadata: [String: String]
    /// In the order of their data.
    public let tensors: [SafeTensorInfo]
    private let data: Data
    private let dataStart: Int

    /// Reads and validates the whole file. It is read once, so the header and the data it
    /// describes are the same bytes even if the file changes meanwhile.
    public init(contentsOf path: String) throws {
        let file = try InputFile(path)
        let bytes = try file.read(at: 0, count: file.size)
        let headerLength = try SafeTensors.headerLength(bytes.prefix(8), fileSize: bytes.count, path: path)
        let header = try SafeTensors.parseHeader(Data(bytes[8..<8 + headerLength]),
                                                 dataSize: bytes.count - 8 - headerLength, path: path)
        self.path = path
        metadata = header.metadata
        tensors = header.tensors
        data = bytes
        dataStart = 8 + headerLength
    }

    /// Reads and validates only the header (sizes are checked against the file's length),
    /// which is all `deepdem info` and building a network from a checkpoint need.
    public static func header(of path: String) throws -> (metadata: [String: String], tensors: [SafeTensorInfo]) {
        let file = try InputFile(path)
        let headerLength = try headerLength(file.read(at: 0, count: 8), fileSize: file.size, path: path)
        return try parseHeader(file.read(at: 8, count: headerLength), dataSize: file.size - 8 - headerLength, path: path)
    }

    public func info(_ name: String) -> SafeTensorInfo? { tensors.first { $0.name == name } }

    private func entry(_ name: String, _ dtype: SafeTensorDType) throws -> SafeTensorInfo {
        guard let t = info(name) else { throw NNError("\(path): no tensor '\(name)'") }
        guard t.dtype == dtype else {
            throw NNError("\(path): tensor '\(name)' has dtype \(t.dtype.rawValue), expected \(dtype.rawValue)")
        }
        return t
    }

    /// Copies an F32 tensor's elements to `destination` (which must hold `count` floats).
    public func copyFloats(_ name: String, to destination: UnsafeMutablePointer<Float>) throws {
        let t = try entry(name, .f32)
        copyBytes(t, to: UnsafeMutableRawPointer(destination))
    }

    public func floats(_ name: String) throws -> [Float] {
        let t = try entry(name, .f32)
        var out = [Float](repeating: 0, count: t.count)
        out.withUnsafeMutableBytes { copyBytes(t, to: $0.baseAddress!) }
        return out
    }

    public func int64s(_ name: String) throws -> [Int64] {
        let t = try entry(name, .i64)
        var out = [Int64](repeating: 0, count: t.count)
        out.withUnsafeMutableBytes { copyBytes(t, to: $0.baseAddress!) }
        return out
    }

    public func tensor(_ name: String) throws -> Tensor {
        let t = try entry(name, .f32)
        let out = Tensor(t.shape)
        copyBytes(t, to: UnsafeMutableRawPointer(out.data))
        return out
    }

    private func copyBytes(_ t: SafeTensorInfo, to destination: UnsafeMutableRawPointer) {
        guard t.end > t.begin else { return }
        data.withUnsafeBytes { raw in
            destination.copyMemory(from: raw.baseAddress! + dataStart + t.begin, byteCount: t.end - t.begin)
        }
    }

    // MARK: parsing

    /// safetensors' own reader refuses headers above 100 MB; so does this one, rather than
    /// allocating whatever a corrupt length asks for.
    static let maxHeaderLength = 100_000_000

    private static func headerLength(_ first: Data, fileSize: Int, path: String) throws -> Int {
        guard first.count == 8 else {
            throw NNError("\(path): truncated: \(fileSize) bytes, too short for a safetensors file (8-byte header length)")
        }
        var n: UInt64 = 0
        for (i, b) in first.enumerated() { n |= UInt64(b) << (8 * UInt64(i)) }
        guard n <= UInt64(maxHeaderLength) else {
            throw NNError("\(path): header length \(n) is implausible (not a safetensors file?)")
        }
        guard Int(n) <= fileSize - 8 else {
            throw NNError("\(path): truncated: header length \(n) exceeds the file's \(fileSize) bytes")
        }
        return Int(n)
    }

    private struct DynamicKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private struct Entry: Decodable {
        let dtype: String
        let shape: [Int]
        let data_offsets: [Int]
    }

    /// The header as raw JSON values, so each entry's problem can be reported by name.
    private struct Header: Decodable {
        var metadata: [String: String]?
        var entries: [(String, Result<Entry, Error>)] = []

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: DynamicKey.self)
            for key in c.allKeys {
                if key.stringValue == "__metadata__" {
                    guard let m = try? c.decode([String: String].self, forKey: key) else {
                        throw NNError("__metadata__ is not an object of strings")
                    }
                    metadata = m
                } else {
                    entries.append((key.stringValue, Result { try c.decode(Entry.self, forKey: key) }))
                }
            }
        }
    }

    private static func parseHeader(_ json: Data, dataSize: Int, path: String) throws
        -> (metadata: [String: String], tensors: [SafeTensorInfo])
    {
        guard json.first == UInt8(ascii: "{") else {
            throw NNError("\(path): corrupt header: not a JSON object (not a safetensors file?)")
        }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: json)
        } catch let e as NNError {
            throw NNError("\(path): corrupt header: \(e.message)")
        } catch {
            throw NNError("\(path): corrupt header: invalid JSON")
        }
        if let keys = DuplicateKeys.first(in: json) {
            let what: String
            switch (keys.count, keys[0]) {
            case (1, let name) where name != "__metadata__": what = "tensor '\(name)'"
            case (2, "__metadata__"): what = "metadata key '\(keys[1])'"
            default: what = "'\(keys.joined(separator: "."))'"
            }
            throw NNError("\(path): corrupt header: \(what) appears twice")
        }
        var tensors: [SafeTensorInfo] = []
        for (name, result) in header.entries {
            // PyTorch names never hold them, and `deepdem info` prints names to a terminal.
            if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                throw NNError("\(path): corrupt header: tensor name \(name.debugDescription) holds a control character")
            }
            guard case .success(let e) = result else {
                throw NNError("\(path): tensor '\(name)': malformed header entry (needs dtype, shape, data_offsets)")
            }
            guard let dtype = SafeTensorDType(rawValue: e.dtype) else {
                throw NNError("\(path): tensor '\(name)' has dtype \(e.dtype); only F32 and I64 are supported")
            }
            guard e.data_offsets.count == 2 else {
                throw NNError("\(path): tensor '\(name)': data_offsets must be [begin, end]")
            }
            let (begin, end) = (e.data_offsets[0], e.data_offsets[1])
            guard begin >= 0, end >= begin else {
                throw NNError("\(path): tensor '\(name)': data_offsets [\(begin), \(end)] are not a byte range")
            }
            var bytes = dtype.byteSize
            for d in e.shape {
                let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
                guard d >= 0, !overflow else { throw NNError("\(path): tensor '\(name)': invalid shape \(e.shape)") }
                bytes = p
            }
            guard end - begin == bytes else {
                throw NNError("\(path): tensor '\(name)': data_offsets [\(begin), \(end)] hold \(end - begin) bytes, "
                              + "shape \(e.shape) of \(dtype.rawValue) needs \(bytes)")
            }
            guard end <= dataSize else {
                throw NNError("\(path): truncated: tensor '\(name)' ends at byte \(end) of a \(dataSize)-byte data section")
            }
            tensors.append(SafeTensorInfo(name: name, dtype: dtype, shape: e.shape, begin: begin, end: end))
        }
        // The format requires the tensors to tile the data section exactly: no overlap, no gap.
        tensors.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var at = 0
        for (i, t) in tensors.enumerated() {
            if t.begin < at {
                throw NNError("\(path): tensor '\(t.name)' overlaps tensor '\(tensors[i - 1].name)' in the data section")
            }
            if t.begin > at {
                throw NNError("\(path): gap of \(t.begin - at) bytes before tensor '\(t.name)' in the data section")
            }
            at = t.end
        }
        guard at == dataSize else {
            throw NNError("\(path): \(dataSize - at) bytes after the last tensor (corrupt or not a safetensors file)")
        }
        return (header.metadata ?? [:], tensors)
    }

}

/// Builds a safetensors file; tensors are written in the order they were added.
public struct SafeTensorsWriter {
    private enum Source {
        case tensor(Tensor)
        case floats([Float])
        case int64s([Int64])
    }

    public var metadata: [String: String]
    private var entries: [(name: String, dtype: SafeTensorDType, shape: [Int], source: Source)] = []

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    /// The tensor is read when `write` runs, not copied now.
    public mutating func add(_ name: String, _ t: Tensor) {
        entries.append((name, .f32, t.shape, .tensor(t)))
    }

    public mutating func add(_ name: String, shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "SafeTensorsWriter: \(floats.count) floats for shape \(shape)")
        entries.append((name, .f32, shape, .floats(floats)))
    }

    public mutating func add(_ name: String, shape: [Int], int64s: [Int64]) {
        precondition(shape.reduce(1, *) == int64s.count, "SafeTensorsWriter: \(int64s.count) ints for shape \(shape)")
        entries.append((name, .i64, shape, .int64s(int64s)))
    }

    func headerBytes() throws -> Data {
        var header: [String: Any] = [:]
        var at = 0
        for e in entries {
            guard e.name != "__metadata__", header[e.name] == nil else {
                throw NNError("safetensors: duplicate or reserved tensor name '\(e.name)'")
            }
            let bytes = e.shape.reduce(1, *) * e.dtype.byteSize
            header[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [at, at + bytes]] as [String: Any]
            at += bytes
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
        // Padding to a multiple of 8 keeps the data section aligned for readers that map the file.
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        return json
    }

    /// Writes through `StagedOutput`, so that `path` holds either the old file or the complete new
    /// one, never a partial write.
    public func write(to path: String) throws {
        let json = try headerBytes()
        try StagedOutput.write(to: path) { file in
            try withUnsafeBytes(of: UInt64(json.count).littleEndian) { try file.write($0) }
            try json.withUnsafeBytes { try file.write($0) }
            for e in entries {
                switch e.source {
                case .tensor(let t): try file.write(UnsafeRawBufferPointer(t.buffer))
                case .floats(let a): try a.withUnsafeBytes { try file.write($0) }
                case .int64s(let a): try a.withUnsafeBytes { try file.write($0) }
                }
            }
        }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }
