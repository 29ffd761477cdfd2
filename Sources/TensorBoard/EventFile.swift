import Foundation
import Primitives
import SwiftProtobuf

/// One step's scalars, as one Event holding a Summary of (tag, simple_value) values.
public struct ScalarEvent: Equatable, Sendable {
    public var step: Int
    public var wallTime: Double
    public var scalars: [Scalar]

    public struct Scalar: Equatable, Sendable {
        public var tag: String
        public var value: Float
        public init(_ tag: String, _ value: Float) {
            self.tag = tag
            self.value = value
        }
    }

    public init(step: Int, wallTime: Double, scalars: [Scalar]) {
        self.step = step
        self.wallTime = wallTime
        self.scalars = scalars
    }
}

/// A TensorBoard event file (`events.out.tfevents.<unix seconds>.<host>`): TFRecords of Events,
/// the first saying the format version, the second a session start at step 0 (see tensorboard.proto). Every record is appended with its own write and the file
/// closed after it, so TensorBoard shows it at once and a killed process leaves whole records.
public struct EventFile: Sendable {
    public static let namePrefix = "events.out.tfevents."
    static let fileVersion = "brain.Event:2"

    public let path: String

    /// The event file already at `path`, to append to.
    public init(path: String) { self.path = path }

    /// Writes a new event file in `folder` (made if missing) holding the version and start records
    /// and `events`, under a temporary name renamed when complete.
    public static func create(in folder: String, events: [ScalarEvent],
                              wallTime: Double = Date().timeIntervalSince1970) throws -> EventFile {
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw OutputError(folder, "cannot create the folder: \(error.localizedDescription)")
        }
        let name = namePrefix + "\(Int(wallTime)).\(hostName())"
        let path = (folder as NSString).appendingPathComponent(name)
        var version = Tensorboard_Event(), start = Tensorboard_Event()
        version.wallTime = wallTime
        version.fileVersion = fileVersion
        start.wallTime = wallTime
        start.sessionLog.status = .start
        var bytes = try record(version) + record(start)
        for event in events { bytes.append(try record(event)) }
        try StagedOutput.write(bytes, to: path)
        return EventFile(path: path)
    }

    public func append(_ event: ScalarEvent) throws {
        let bytes = try EventFile.record(event)
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw OutputError(path, "cannot append: \(String(cString: strerror(errno)))") }
        var failure: String?
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { failure = String(cString: strerror(errno)); return }
                done += n
            }
        }
        if close(fd) != 0, failure == nil { failure = String(cString: strerror(errno)) }
        if let failure { throw OutputError(path, "cannot append: \(failure)") }
    }

    static func record(_ event: ScalarEvent) throws -> Data {
        var e = Tensorboard_Event()
        e.wallTime = event.wallTime
        e.step = Int64(event.step)
        e.summary.value = event.scalars.map { scalar in
            var v = Tensorboard_Summary.Value()
            v.tag = scalar.tag
            v.simpleValue = scalar.value
            return v
        }
        return try record(e)
    }

    static func record(_ event: Tensorboard_Event) throws -> Data {
        TFRecord.frame(try event.serializedBytes())
    }

    /// This machine's name, as TensorBoard's own writers put it in file names.
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }
}
