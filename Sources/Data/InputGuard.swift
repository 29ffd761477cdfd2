import Foundation

/// `--overwrite` replaces a command's earlier outputs, never its inputs. Every command hands what
/// it will write and what it reads to `check` before any work, so a typo in `--out` cannot destroy
/// a scene band or a checkpoint.
///
/// Files are told apart by device and inode, not by name: a symlink, a hard link, `..` or a bind
/// mount that leads to an input is that input.
public enum InputGuard {
    /// Throws, naming the output, when an output file is an input, an output folder is or holds
    /// an input, or two outputs are one file (the second would replace the first, which a
    /// later step may read: refine's hillshade reads its DSM).
    public static func check(files outputs: [String], folders: [String] = [], reading inputs: [String]) throws {
        let read = inputs.compactMap { path in identity(path).map { (path, $0) } }
        for output in outputs {
            guard let id = identity(output) else { continue }
            if let (input, _) = read.first(where: { $0.1 == id }) { throw refusal(output, input) }
        }
        for folder in folders {
            guard let id = identity(folder) else { continue }
            for input in inputs where ancestors(of: input).contains(id) { throw refusal(folder, input, holds: true) }
        }
        var seen: [String: String] = [:]
        for output in outputs + folders {
            let key = resolved(output)
            if let first = seen[key] { throw DataError(output, "is the same file as the output \(first); give each output its own name") }
            seen[key] = output
        }
    }

    /// The band files a scene folder holds: every one of them is an input of a command that reads
    /// the scene, whether or not this run uses the band.
    public static func sceneFiles(_ folder: String) -> [String] {
        Scene.bandsPresent(in: folder).map { Scene.file(folder, $0) }
    }

    private struct Identity: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    /// The file `path` leads to (through symlinks), if it exists.
    private static func identity(_ path: String) -> Identity? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return Identity(device: UInt64(s.st_dev), inode: UInt64(s.st_ino))
    }

    /// `path` and every folder above it, after symlinks are resolved.
    private static func ancestors(of path: String) -> [Identity] {
        var url = URL(fileURLWithPath: resolved(path))
        var found: [Identity] = []
        while true {
            if let id = identity(url.path) { found.append(id) }
            let parent = url.deletingLastPathComponent()
            if parent.path == url.path { return found }
            url = parent
        }
    }

    /// The real path of `path`, or of its folder joined with its name when it does not exist yet.
    private static func resolved(_ path: String) -> String {
        if let real = realpath(path, nil) {
            defer { free(real) }
            return String(cString: real)
        }
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        guard folder != path, let real = realpath(folder, nil) else { return url.standardized.path }
        defer { free(real) }
        return URL(fileURLWithPath: String(cString: real)).appendingPathComponent(url.lastPathComponent).path
    }

    /// `path` made absolute, without following symlinks: what the user typed, in one spelling.
    private static func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardized.path }

    private static func refusal(_ output: String, _ input: String, holds: Bool = false) -> DataError {
        let what = holds ? "holds \(input), which this command reads"
            : absolute(output) == absolute(input) ? "is an input of this command" : "is \(input), which this command reads"
        return DataError(output, "\(what); --overwrite replaces earlier outputs, never inputs: choose another output")
    }
}
