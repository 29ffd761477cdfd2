import Foundation

/// The command line's output: results and log lines on standard output, and progress that is a
/// live line on a terminal and plain lines in a log file.
enum Console {
    /// Whether progress written to `descriptor` is a live line rewritten in place. The one rule for
    /// every command's progress: `DEEPDEM_PROGRESS=live` or `plain` decides; otherwise live on a
    /// terminal, except under a launcher: Open MPI gives every rank a pseudo-terminal even when
    /// mpirun's output goes to a file, so there the live line is opt-in.
    static func isLive(_ descriptor: Int32) -> Bool {
        let env = ProcessInfo.processInfo.environment
        switch env["DEEPDEM_PROGRESS"] {
        case "live": return true
        case "plain": return false
        default:
            let launched = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "SLURM_JOB_ID"].contains { env[$0] != nil }
            return isatty(descriptor) != 0 && !launched
        }
    }

    /// Training's progress goes to standard output, with its log lines.
    static let outputIsLive = isLive(STDOUT_FILENO)

    static func line(_ text: String) {
        print(text)
        fflush(nil)
    }

    /// A live line on standard output (rewritten in place); nothing when it is not live (callers
    /// log plain lines).
    static func live(_ text: String) {
        guard outputIsLive else { return }
        print("\r\u{1B}[K" + text, terminator: "")
        fflush(nil)
    }

    static func endLive() {
        if outputIsLive { print("") }
    }
}
