import Foundation
import Primitives

/// Where a scene folder is written (`prepare`, `synth`): a new folder is built as a `StagedOutput`
/// and renamed at the end; an existing one (with `overwrite`) is written in place band by band.
struct SceneDestination {
    let folder: String
    let writeFolder: String
    private let stage: StagedOutput?
    private let parent: URL

    init(folder: String, overwrite: Bool) throws {
        let url = URL(fileURLWithPath: folder)
        parent = url.deletingLastPathComponent()
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw DataError(folder, "cannot write: folder \(parent.path) does not exist")
        }
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) {
            guard isFolder.boolValue else { throw DataError(folder, "exists and is a file, not a folder") }
            if !overwrite, !Scene.bandsPresent(in: folder).isEmpty {
                throw DataError(folder, "already holds a scene (pass --overwrite to replace it)")
            }
            stage = nil
            writeFolder = folder
        } else {
            let stage = StagedOutput(folder)
            do { try FileManager.default.createDirectory(atPath: stage.temporary, withIntermediateDirectories: false) } catch {
                throw DataError(folder, "cannot create: \(error.localizedDescription)")
            }
            self.stage = stage
            writeFolder = stage.temporary
        }
        self.folder = folder
    }

    /// A scratch folder beside the destination (same file system, removed by the caller).
    func makeWorkFolder() throws -> String {
        let work = parent.appendingPathComponent(".\(URL(fileURLWithPath: folder).lastPathComponent).work-\(getpid())").path
        do { try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true) } catch {
            throw DataError(folder, "cannot create a working folder beside it: \(error.localizedDescription)")
        }
        return work
    }

    /// Removes the temporary folder of a failed run.
    func cleanUp() {
        stage?.discard()
    }

    /// Moves a new folder into place (an existing one already is).
    func finish() throws {
        try stage?.commit(what: "scene")
    }

    /// Removes an earlier scene's bands that are not `bands` (a new folder has none).
    func removeBands(except bands: [String]) {
        for stale in Scene.bandsPresent(in: folder) where !bands.contains(stale) {
            try? FileManager.default.removeItem(atPath: Scene.file(folder, stale))
        }
    }
}
