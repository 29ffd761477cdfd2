import Foundation

/// A user error the command line reports as one line.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Prints `deepdem: error: <one line>` on stderr and exits with `code`: how every command ends
/// on bad input (no stack trace; the libraries' errors already name the file and the problem).
func fail(_ error: Any, code: Int32 = 1) -> Never {
    let line = "\(error)".replacingOccurrences(of: "\n", with: " ")
    FileHandle.standardError.write(Data("deepdem: error: \(line)\n".utf8))
    exit(code)
}

/// Runs a command's body, turning any thrown error into `fail`.
func guarded(_ body: () throws -> Void) {
    do { try body() } catch { fail(error) }
}

/// Standard output and error, for progress that is live on a terminal and plain in a log file.
enum Console {
    static let isTTY = isatty(STDOUT_FILENO) != 0

    static func line(_ text: String) {
        print(text)
        fflush(nil)
    }

    /// A live line on a terminal (rewritten in place); nothing elsewhere (callers log plain lines).
    static func live(_ text: String) {
        guard isTTY else { return }
        print("\r\u{1B}[K" + text, terminator: "")
        fflush(nil)
    }

    static func endLive() {
        if isTTY { print("") }
    }
}
