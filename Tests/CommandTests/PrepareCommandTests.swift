import Data
import Foundation
import XCTest

final class PrepareCommandTests: XCTestCase {
    /// An ortho at 1 m (the reference), a DSM at 2 m at a fractional offset with nodata, a lidar
    /// DSM at 1.5 m; all UTM 10N.
    func writeInputs(_ folder: URL) throws -> (ortho: String, dsm: String, lidar: String) {
        func write(_ name: String, width: Int, height: Int, x0: Double, y0: Double, pixel: Double,
                   _ value: (Double, Double) -> Float) throws -> String {
            let grid = try Grid(width: width, height: height, originX: x0, originY: y0, pixelSize: pixel, epsg: 32610)
            var values = [Float](repeating: 0, count: grid.pixelCount)
            for y in 0..<height { for x in 0..<width {
                values[y * width + x] = value(x0 + (Double(x) + 0.5) * pixel, y0 - (Double(y) + 0.5) * pixel)
            } }
            let path = folder.appendingPathComponent(name).path
            try RasterWriter.write(values, grid: grid, nodata: -9999, to: path)
            return path
        }
        let ortho = try write("ortho.tif", width: 90, height: 80, x0: 400_000, y0: 5_300_000, pixel: 1) { e, n in
            Float(100 + 50 * sin(e / 5) + 30 * cos(n / 7))
        }
        let dsm = try write("dsm.tif", width: 60, height: 50, x0: 399_990.5, y0: 5_300_010.5, pixel: 2) { e, n in
            abs(e - 400_040) < 2 && abs(n - 5_299_960) < 2 ? .nan : Float(200 + 0.1 * (e - 400_000))
        }
        let lidar = try write("lidar.tif", width: 50, height: 50, x0: 400_010.2, y0: 5_299_990.2, pixel: 1.5) { e, _ in
            Float(201 + 0.1 * (e - 400_000))
        }
        return (ortho, dsm, lidar)
    }

    func testFlagsAndConfigFileGiveTheSameScene() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let inputs = try writeInputs(folder)
        let byFlags = folder.appendingPathComponent("flags").path
        let run = try runDeepDEM(["prepare", "--dsm", inputs.dsm, "--ortho", inputs.ortho, "--lidar", inputs.lidar,
                                  "--contrast", "stretch", "--fill-holes", "2", "--out", byFlags])
        XCTAssertEqual(run.status, 0, run.stderr)
        // The ortho's 1 m lattice inside the lidar's extent (x 400010.2–400085.2 within the
        // ortho's 400000–400090; y 5299915.2–5299990.2 within 5299920–5300000).
        XCTAssertTrue(run.stdout.contains("74×70 px of 1×1"), run.stdout)
        XCTAssertTrue(run.stderr.contains("prepare"), "progress on stderr: \(run.stderr)")
        XCTAssertEqual(Scene.bandsPresent(in: byFlags), [Band.aspDSM, Band.lidarDSM, Band.nodataMask, Band.ortho1].sorted())
        let dsm = try Raster(path: Scene.file(byFlags, Band.aspDSM))
        XCTAssertEqual(dsm.grid.geoTransform, [400_011, 1, 0, 5_299_990, 0, -1])
        XCTAssertFalse(try dsm.readAll().contains { $0.isNaN }, "--fill-holes 2 fills the DSM's 2 px hole")

        let config = folder.appendingPathComponent("prepare.yaml").path
        let byFile = folder.appendingPathComponent("file").path
        try """
            dsm: \(inputs.dsm)
            ortho: [\(inputs.ortho)]
            lidar: \(inputs.lidar)
            contrast: stretch
            fill_holes: 2
            out: \(byFile)
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let again = try runDeepDEM(["prepare", "--config", config])
        XCTAssertEqual(again.status, 0, again.stderr)
        for band in Scene.bandsPresent(in: byFlags) {
            let a = try Raster(path: Scene.file(byFlags, band)).readAll(), b = try Raster(path: Scene.file(byFile, band)).readAll()
            XCTAssertTrue(zip(a, b).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, band)
        }
        // Flags win over the file.
        let other = folder.appendingPathComponent("other").path
        let overridden = try runDeepDEM(["prepare", "--config", config, "--out", other, "--resolution", "3"])
        XCTAssertEqual(overridden.status, 0, overridden.stderr)
        XCTAssertEqual(try Raster(path: Scene.file(other, Band.aspDSM)).grid.geoTransform[1], 3)
    }

    func testBadInputIsOneLineAndLeavesNothing() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let inputs = try writeInputs(folder)
        let out = folder.appendingPathComponent("scene").path
        let before = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        let text = folder.appendingPathComponent("readme.tif").path
        try "hello".write(toFile: text, atomically: true, encoding: .utf8)
        let config = folder.appendingPathComponent("bad.yaml").path
        try "dsm: \(inputs.dsm)\nout: \(out)\nresolutoin: 2\n".write(toFile: config, atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["prepare", "--out", out], "--dsm is required"),
            (["prepare", "--dsm", inputs.dsm, "--out", out, "--lidar", folder.appendingPathComponent("gone.tif").path], "gone.tif: no such file"),
            (["prepare", "--dsm", text, "--out", out], "readme.tif: not a readable raster"),
            (["prepare", "--dsm", inputs.dsm + ":2", "--out", out], "dsm.tif: has 1 band; there is no band 2"),
            (["prepare", "--dsm", inputs.dsm, "--out", folder.appendingPathComponent("missing/scene").path], "does not exist"),
            (["prepare", "--dsm", inputs.dsm, "--out", out, "--red", inputs.ortho], "needs both a red and a NIR raster"),
            (["prepare", "--dsm", inputs.dsm, "--out", out, "--resampling", "spline"], "unknown resampling 'spline'"),
            (["prepare", "--dsm", inputs.dsm, "--out", out, "--fill-holes=-1"], "--fill-holes"),
            (["prepare", "--config", config], "bad.yaml: unknown key 'resolutoin'"),
        ]
        for (arguments, phrase) in cases {
            assertRefused(try runDeepDEM(arguments), phrase)
        }
        try FileManager.default.removeItem(atPath: text)
        try FileManager.default.removeItem(atPath: config)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(), before, "nothing half-written")

        XCTAssertEqual(try runDeepDEM(["prepare", "--dsm", inputs.dsm, "--out", out]).status, 0)
        assertRefused(try runDeepDEM(["prepare", "--dsm", inputs.dsm, "--out", out]), "already holds a scene (pass --overwrite")
        XCTAssertEqual(try runDeepDEM(["prepare", "--dsm", inputs.dsm, "--out", out, "--overwrite"]).status, 0)
    }
}
