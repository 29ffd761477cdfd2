import Foundation

/// A user error the command line reports as one line.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Prints `deepdem: error: <one line>` on stderr and exits with `code`: how every command ends
/// on bad input (no stack trace; the libraries' errors already name the file and the problem).
func fail(_ error: Any, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("deepdem: error: \(oneLine("\(error)"))\n".utf8))
    exit(code)
}

/// `text` with every control character (newlines, tabs, terminal escapes) made a space: errors
/// and `info` show names and values taken from files, which must not move the cursor or clear the screen.
func oneLine(_ text: String) -> String {
    String(String.UnicodeScalarView(text.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }))
}

/// Runs a command's body, turning any thrown error into `fail`.
func guarded(_ body: () throws -> Void) {
    do { try body() } catch { fail(error) }
}

/// Standard output and error, for progress that is live on a terminal and plain in a log file.
enum Console {
    /// Open MPI gives every rank a pseudo-terminal even when mpirun's output goes to a file, so
    /// under a launcher the live line is opt-in (`DEEPDEM_PROGRESS=live`); `plain` forces lines.
    static let isTTY: Bool = {
        let env = ProcessInfo.processInfo.environment
        switch env["DEEPDEM_PROGRESS"] {
        case "live": return true
        case "plain": return false
        default:
            let launched = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "SLURM_JOB_ID"].contains { env[$0] != nil }
            return isatty(STDOUT_FILENO) != 0 && !launched
        }
    }()

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
