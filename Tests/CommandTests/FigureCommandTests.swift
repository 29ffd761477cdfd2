import Data
import Foundation
import XCTest

final class FigureCommandTests: XCTestCase {
    func testWritesAPanelAndRefusesBadInput() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let scene = folder.appendingPathComponent("scene").path
        XCTAssertEqual(try runDeepDEM(["synth", "--out", scene, "--size", "64", "--seed", "2"]).status, 0)
        let truth = try Raster(path: Scene.file(scene, Band.lidarDSM))
        let refined = folder.appendingPathComponent("refined.tif").path
        try RasterWriter.write(try truth.readAll().map { $0 - 0.25 }, grid: truth.grid, nodata: -9999, to: refined)

        let png = folder.appendingPathComponent("fig.png").path
        let run = try runDeepDEM(["figure", "--data", scene, "--refined", refined, "--out", png])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("9 panels"), run.stdout)
        XCTAssertTrue(run.stdout.contains("refined 0.250 m"), run.stdout)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gdalinfo", "-json", png]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: pipe.fileHandleForReading.readDataToEndOfFile()) as? [String: Any])
        process.waitUntilExit()
        XCTAssertEqual(info["driverShortName"] as? String, "PNG")
        XCTAssertEqual((info["bands"] as? [[String: Any]])?.count, 3)
        // 64 px panels enlarged 5× to 320 px, three per row.
        XCTAssertEqual((info["size"] as? [Int])?.first, 2 * 16 + 3 * 320 + 2 * 20)

        let windowed = folder.appendingPathComponent("window.png").path
        let window = try runDeepDEM(["figure", "--data", scene, "--out", windowed, "--window", "8,8,32,16", "--columns", "4"])
        XCTAssertEqual(window.status, 0, window.stderr)
        XCTAssertTrue(window.stdout.contains("7 panels"), window.stdout)

        let other = folder.appendingPathComponent("other.tif").path
        try RasterWriter.write([Float](repeating: 1, count: 64 * 64),
                               grid: try Grid(width: 64, height: 64, originX: 580_001, originY: 5_410_000, pixelSize: 1, epsg: 32610),
                               nodata: nil, to: other)
        let before = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        let fresh = folder.appendingPathComponent("fresh.png").path
        for (arguments, phrase) in [
            (["figure", "--data", scene, "--out", png], "fig.png: already exists (pass --overwrite"),
            (["figure", "--data", scene, "--out", fresh, "--window", "1,2,3"], "--window must be x,y,width,height"),
            (["figure", "--data", scene, "--out", fresh, "--window", "60,0,10,10"], "is not inside the 64×64 px raster"),
            (["figure", "--data", scene, "--out", fresh, "--target", "dtm"], "--target must be"),
            (["figure", "--data", folder.appendingPathComponent("none").path, "--out", fresh], "no such scene folder"),
            (["figure", "--data", scene, "--out", folder.appendingPathComponent("no/f.png").path], "does not exist"),
            (["figure", "--data", scene, "--out", fresh, "--refined", other], "other.tif: grid differs from final_asp_dsm.tif: geotransform origin x"),
        ] {
            assertRefused(try runDeepDEM(arguments), phrase)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(), before, "nothing half-written")
        XCTAssertEqual(try runDeepDEM(["figure", "--data", scene, "--out", png, "--overwrite"]).status, 0)
    }
}
