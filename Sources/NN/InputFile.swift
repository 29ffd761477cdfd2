import Foundation

/// A regular file read with POSIX calls, so that failures report the system's reason. The
/// command line reads its configuration files through it too.
public final class InputFile {
    public let path: String
    /// The length when opened.
    public let size: Int
    private let fd: Int32

    /// Refuses anything but a regular file at once: opening a FIFO for reading would wait for a
    /// writer (O_NONBLOCK makes that open return; it changes nothing for regular files), and a
    /// device or a folder has no length to check.
    public init(_ path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw NNError("\(path): cannot read: \(errnoText())") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw NNError("\(path): cannot read: \(errnoText())")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            let kinds = [S_IFIFO: "a FIFO", S_IFDIR: "a folder", S_IFCHR: "a device", S_IFBLK: "a device", S_IFSOCK: "a socket"]
            throw NNError("\(path): " + (kinds[st.st_mode & S_IFMT].map { "is \($0), not a regular file" } ?? "is not a regular file"))
        }
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    /// Up to `count` bytes at `offset` (fewer at the end of the file).
    public func read(at offset: Int, count: Int) throws -> Data {
        var out = Data(count: count)
        let got = try out.withUnsafeMutableBytes { raw -> Int in
            var done = 0
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw NNError("\(path): cannot read: \(errnoText())") }
                if n == 0 { break }
                done += n
            }
            return done
        }
        return out.prefix(got)
    }
}
