import Foundation

/// An output (a file or a folder) built under a temporary name beside its destination and renamed
/// onto it only when complete, so the destination holds the earlier output or the whole new one,
/// never a part. The temporary is hidden, on the destination's file system (the rename is atomic)
/// and registered with `PartialFiles`; one dropped or discarded before `commit` is removed.
/// Every output of the package is written this way.
public final class StagedOutput {
    public let destination: String
    /// `.<name>.partial-<pid><suffix>` beside the destination (`suffix` for writers that need one,
    /// e.g. a second stage of the same output).
    public let temporary: String
    private let token: Int
    private var settled = false

    public init(_ destination: String, suffix: String = "") {
        let url = URL(fileURLWithPath: destination)
        temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())\(suffix)").path
        self.destination = destination
        token = PartialFiles.add(temporary)
    }

    deinit { discard() }

    /// Renames the temporary onto the destination; if that fails the temporary is removed and the
    /// error names the destination and `what` it is.
    public func commit(what: String = "file") throws {
        precondition(!settled, "an output is committed or discarded once")
        settled = true
        defer { PartialFiles.remove(token) }
        if rename(temporary, destination) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw OutputError(destination, "cannot move the finished \(what) into place: \(reason)")
        }
    }

    /// Removes the temporary and whatever it holds.
    public func discard() {
        guard !settled else { return }
        settled = true
        try? FileManager.default.removeItem(atPath: temporary)
        PartialFiles.remove(token)
    }

    /// Writes a file whose bytes `body` hands to the sink, then syncs it, renames it onto `path` and
    /// syncs the folder, so that after a crash `path` holds the earlier file or the whole new one.
    /// Every failure is `<path>: cannot write: <reason>`.
    public static func write(to path: String, _ body: (FileSink) throws -> Void) throws {
        let stage = StagedOutput(path)
        let fd = open(stage.temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw OutputError.cannotWrite(path) }
        var failure: Error?
        do {
            try body(FileSink(fd: fd, path: path))
            if fsync(fd) != 0 { failure = OutputError.cannotWrite(path) }
        } catch {
            failure = error
        }
        if close(fd) != 0, failure == nil { failure = OutputError.cannotWrite(path) }
        if let failure { throw failure }
        if rename(stage.temporary, path) != 0 { throw OutputError.cannotWrite(path) }
        stage.settled = true
        PartialFiles.remove(stage.token)
        let parent = (path as NSString).deletingLastPathComponent
        let folder = open(parent.isEmpty ? "." : parent, O_RDONLY | O_CLOEXEC)
        if folder >= 0 {
            fsync(folder)
            close(folder)
        }
    }

    /// `write(to:)` of bytes already in memory.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { sink in try data.withUnsafeBytes { try sink.write($0) } }
    }
}

/// The open temporary file of `StagedOutput.write(to:_:)`.
public struct FileSink {
    fileprivate let fd: Int32
    fileprivate let path: String

    /// Writes all of `bytes` (short writes and EINTR continue).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = writeSome(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw OutputError.cannotWrite(path) }
            done += n
        }
    }
}

/// The system's `write`, which `FileSink.write` hides by its name.
private func writeSome(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }

/// A failure to write an output: one line naming the destination, as the command line prints it.
public struct OutputError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let problem: String

    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    /// What `errno` says went wrong.
    static func cannotWrite(_ path: String) -> OutputError {
        OutputError(path, "cannot write: \(String(cString: strerror(errno)))")
    }

    public var description: String { "\(path): \(problem)" }
}
