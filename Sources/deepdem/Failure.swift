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
