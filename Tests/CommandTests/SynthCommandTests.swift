import Data
import Foundation
import XCTest

final class SynthCommandTests: XCTestCase {
    func testWritesAGeoreferencedSceneOnceAndRefusesToClobberIt() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let scene = folder.appendingPathComponent("scene").path
        let first = try runDeepDEM(["synth", "--out", scene, "--size", "96", "--seed", "4"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("96×96"), first.stdout)
        XCTAssertEqual(Scene.bandsPresent(in: scene), SyntheticScene.bands.sorted())

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gdalinfo", "-json", Scene.file(scene, Band.lidarDSM)]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let info = try XCTUnwrap(JSONSerialization.jsonObject(with: pipe.fileHandleForReading.readDataToEndOfFile()) as? [String: Any])
        process.waitUntilExit()
        XCTAssertEqual(info["size"] as? [Int], [96, 96])
        XCTAssertEqual(info["geoTransform"] as? [Double], [580_000, 1, 0, 5_410_000, 0, -1])
        let band = try XCTUnwrap((info["bands"] as? [[String: Any]])?.first)
        XCTAssertEqual(band["noDataValue"] as? Double, -9999)

        let refused = try runDeepDEM(["synth", "--out", scene, "--size", "32"])
        assertRefused(refused, "already holds a scene")
        XCTAssertEqual(try Raster(path: Scene.file(scene, Band.aspDSM)).grid.width, 96, "left untouched")

        let again = try runDeepDEM(["synth", "--out", scene, "--size", "96", "--seed", "4", "--overwrite"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let copy = folder.appendingPathComponent("copy").path
        XCTAssertEqual(try runDeepDEM(["synth", "--out", copy, "--size", "96", "--seed", "4"]).status, 0)
        for band in SyntheticScene.bands {
            let a = try Raster(path: Scene.file(scene, band)).readAll(), b = try Raster(path: Scene.file(copy, band)).readAll()
            XCTAssertTrue(zip(a, b).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(band) is a function of the seed")
        }
    }

    func testBadArguments() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        assertRefused(try runDeepDEM(["synth", "--out", folder.appendingPathComponent("no/scene").path]), "does not exist")
        assertRefused(try runDeepDEM(["synth", "--out", folder.appendingPathComponent("s").path, "--size", "3"]), "--size")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [], "nothing half-written")
    }
}
