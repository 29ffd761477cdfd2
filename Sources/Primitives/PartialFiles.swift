import Foundation

/// Outputs being built under temporary names (a GeoTIFF, a PNG, a scene folder, a checkpoint), so
/// that a process ended by a signal removes them instead of leaving hidden half-written files.
///
/// `StagedOutput` adds each temporary path before it is created and removes it once it is renamed
/// into place or deleted. A command that wants the clean-up calls `removeOnSignals` once: the
/// signal handler only writes the signal's number to a pipe (all a handler may safely do); a
/// thread waiting on the pipe deletes the registered paths and ends the process by the same
/// signal, so its exit status still says what ended it.
public enum PartialFiles {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var paths: [Int: String] = [:]
    nonisolated(unsafe) private static var next = 0
    nonisolated(unsafe) fileprivate static var pipeInput: Int32 = -1

    /// Registers `path` (a file or a folder); returns the token for `remove`.
    static func add(_ path: String) -> Int {
        lock.lock()
        defer { lock.unlock() }
        next += 1
        paths[next] = path
        return next
    }

    static func remove(_ token: Int) {
        lock.lock()
        paths[token] = nil
        lock.unlock()
    }

    /// From now on, `signals` delete every registered path and then end the process as the
    /// signal would have.
    public static func removeOnSignals(_ signals: [Int32] = [SIGTERM, SIGINT]) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }   // no pipe: the signals keep their default action
        let output = fds[0]
        pipeInput = fds[1]
        let thread = Thread {
            var received: Int32 = 0
            while read(output, &received, MemoryLayout<Int32>.size) != MemoryLayout<Int32>.size {}
            // Held until the process ends, so no writer registers a new file meanwhile.
            lock.lock()
            for path in paths.values { try? FileManager.default.removeItem(atPath: path) }
            signal(received, SIG_DFL)
            raise(received)
        }
        thread.start()
        for s in signals { signal(s, forwardSignal) }
    }
}

/// Async-signal-safe: one `write` to a pipe.
private func forwardSignal(_ s: Int32) {
    var value = s
    _ = write(PartialFiles.pipeInput, &value, MemoryLayout<Int32>.size)
}
