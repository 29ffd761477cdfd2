import Foundation
import XCTest

/// `--overwrite` replaces outputs, never inputs: refine, figure and prepare refuse, with one
/// line and exit 1, to write onto a file they read (by name, through a symlink or a hard link),
/// and leave it byte for byte as it was.
final class InputGuardCommandTests: XCTestCase {
    private var folder = ""
    private var scene: String { folder + "/scene" }
    private var model: String { folder + "/model.safetensors" }

    override func setUpWithError() throws {
        folder = try makeCommandFolder().path
        try makeModelAndScene(in: folder, size: 128)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func refine(_ extra: [String]) throws -> DeepDEMOutput {
        try runDeepDEM(["refine", "--checkpoint", model, "--data", scene, "--overwrite"] + extra)
    }

    /// Runs `command`, which must be refused naming `victim`, and checks `victim` is untouched.
    private func assertSpared(_ victim: String, _ phrase: String, file: StaticString = #filePath, line: UInt = #line,
                              _ command: () throws -> DeepDEMOutput) throws {
        let before = try Data(contentsOf: URL(fileURLWithPath: victim))
        assertRefused(try command(), phrase, file: file, line: line)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: victim)), before, "\(victim) was changed", file: file, line: line)
    }

    func testRefineOntoTheSceneOrTheCheckpoint() throws {
        let dsm = scene + "/final_asp_dsm.tif"
        try assertSpared(dsm, "\(dsm): is an input of this command") { try refine(["--out", dsm]) }
        try assertSpared(model, "\(model): is an input of this command") { try refine(["--out", model]) }
        // Without --overwrite the refusal is the same, not an invitation to pass --overwrite.
        try assertSpared(dsm, "is an input of this command") {
            try runDeepDEM(["refine", "--checkpoint", model, "--data", scene, "--out", dsm])
        }
    }

    func testRefineThroughASymlinkOrAHardLink() throws {
        let dsm = scene + "/final_asp_dsm.tif", link = folder + "/link.tif", hard = folder + "/hard.tif"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dsm)
        try FileManager.default.linkItem(atPath: scene + "/final_ndvi.tif", toPath: hard)
        try assertSpared(dsm, "\(link): is \(dsm), which this command reads") { try refine(["--out", link]) }
        try assertSpared(hard, "\(hard): is \(scene)/final_ndvi.tif") { try refine(["--out", hard]) }
        // The scene itself reached through a symlinked folder.
        let linkedScene = folder + "/linked-scene"
        try FileManager.default.createSymbolicLink(atPath: linkedScene, withDestinationPath: scene)
        try assertSpared(dsm, "\(linkedScene)/final_asp_dsm.tif: is \(dsm)") {
            try runDeepDEM(["refine", "--checkpoint", model, "--data", scene, "--overwrite", "--out", linkedScene + "/final_asp_dsm.tif"])
        }
    }

    func testHillshadeOntoABandTheCheckpointOrTheRefinedDSM() throws {
        let out = folder + "/refined.tif", ndvi = scene + "/final_ndvi.tif"
        try assertSpared(ndvi, "\(ndvi): is an input of this command") { try refine(["--out", out, "--hillshade", ndvi]) }
        try assertSpared(model, "\(model): is an input of this command") { try refine(["--out", out, "--hillshade", model]) }
        assertRefused(try refine(["--out", out, "--hillshade", out]), "is the same file as the output \(out)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testFigureOntoABand() throws {
        let ortho = scene + "/final_ortho_channel1.tif"
        try assertSpared(ortho, "\(ortho): is an input of this command") {
            try runDeepDEM(["figure", "--data", scene, "--out", ortho, "--overwrite"])
        }
    }

    /// prepare's --out may not be, or hold, a folder with its inputs; a new folder beside them is fine.
    func testPrepareIntoTheFolderOfItsInputs() throws {
        let dsm = scene + "/final_asp_dsm.tif"
        let args = ["prepare", "--dsm", dsm, "--ortho", scene + "/final_ortho_channel1.tif", "--lidar", scene + "/final_lidar_data.tif"]
        try assertSpared(dsm, "\(scene): holds \(dsm), which this command reads") {
            try runDeepDEM(args + ["--out", scene, "--overwrite"])
        }
        assertRefused(try runDeepDEM(args + ["--out", folder, "--overwrite"]), "\(folder): holds \(dsm)")
        let ok = try runDeepDEM(args + ["--out", folder + "/prepared"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }
}
