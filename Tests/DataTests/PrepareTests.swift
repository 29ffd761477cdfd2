import Data
import Foundation
import XCTest

/// Inputs in three coordinate systems and four resolutions, prepared and compared with gdalwarp
/// run on the same files.
final class PrepareTests: XCTestCase {
    /// A smooth surface with some texture, in UTM metres, so every resampler has work to do.
    static func surface(_ e: Double, _ n: Double) -> Float {
        Float(300 + 0.2 * (e - 500_000) - 0.1 * (n - 5_200_000) + 4 * sin(e / 7) * cos(n / 11))
    }

    struct Inputs {
        let folder: URL
        var ortho1: String, ortho2: String, dsm: String, red: String, nir: String, tri: String, lidar: String
    }

    /// ortho1: UTM 10N 1 m UInt16 (the reference); ortho2: UTM 0.5 m, three Byte bands; dsm:
    /// geographic (EPSG:4326) with ASP's nodata and a hole; red and NIR: web mercator 3 m;
    /// triangulation error: UTM 2 m; lidar: UTM 2 m at a fractional offset, the smallest, so it
    /// bounds the common extent.
    func makeInputs() throws -> Inputs {
        let folder = try makeTemporaryFolder()
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        func utm(_ name: String, width: Int, height: Int, x0: Double, y0: Double, pixel: Double,
                 nodata: Double? = nil, _ value: (Double, Double) -> Float) throws -> String {
            let grid = try Grid(width: width, height: height, originX: x0, originY: y0, pixelSize: pixel, epsg: 32610)
            var values = [Float](repeating: 0, count: grid.pixelCount)
            for y in 0..<height { for x in 0..<width {
                values[y * width + x] = value(x0 + (Double(x) + 0.5) * pixel, y0 - (Double(y) + 0.5) * pixel)
            } }
            try RasterWriter.write(values, grid: grid, nodata: nodata, to: path(name))
            return path(name)
        }
        let orthoFloat = try utm("ortho1f.tif", width: 120, height: 100, x0: 500_000, y0: 5_200_000, pixel: 1) { e, n in
            Float(1000 + 300 * sin(e / 9) + 200 * cos(n / 13))
        }
        _ = try gdalTool("gdal_translate", ["-q", "-ot", "UInt16", orthoFloat, path("ortho1.tif")])
        var channels: [String] = []
        for k in 0..<3 {
            channels.append(try utm("ortho2_\(k).tif", width: 300, height: 260, x0: 499_990.25, y0: 5_200_010.75, pixel: 0.5) { e, n in
                Float(60 + 40 * Double(k) + 50 * sin((e + n) / (8 + Double(k))))
            })
        }
        _ = try gdalTool("gdalbuildvrt", ["-q", "-separate", path("ortho2.vrt")] + channels)
        _ = try gdalTool("gdal_translate", ["-q", "-ot", "Byte", path("ortho2.vrt"), path("ortho2.tif")])

        let field = try utm("field.tif", width: 320, height: 300, x0: 499_950, y0: 5_200_050, pixel: 1, nodata: -9999) { e, n in
            // A 6 m hole inside the common extent.
            (e - 500_060) * (e - 500_060) + (n - 5_199_940) * (n - 5_199_940) < 9 ? .nan : PrepareTests.surface(e, n)
        }
        _ = try gdalTool("gdalwarp", ["-q", "-t_srs", "EPSG:4326", "-tr", "0.00003", "0.00002", "-r", "bilinear",
                                      "-dstnodata", "-3.40282e+38", field, path("dsm.tif")])
        let redUTM = try utm("red_utm.tif", width: 320, height: 300, x0: 499_950, y0: 5_200_050, pixel: 1) { e, n in
            Float(0.08 + 0.04 * sin(e / 17))
        }
        let nirUTM = try utm("nir_utm.tif", width: 320, height: 300, x0: 499_950, y0: 5_200_050, pixel: 1) { e, n in
            Float(0.3 + 0.2 * cos(n / 19))
        }
        _ = try gdalTool("gdalwarp", ["-q", "-t_srs", "EPSG:3857", "-tr", "3", "3", redUTM, path("red.tif")])
        _ = try gdalTool("gdalwarp", ["-q", "-t_srs", "EPSG:3857", "-tr", "3", "3", nirUTM, path("nir.tif")])
        let tri = try utm("tri.tif", width: 100, height: 90, x0: 499_980, y0: 5_200_020, pixel: 2) { e, n in
            Float(0.5 + 0.3 * sin(e / 5) * sin(n / 6))
        }
        let lidar = try utm("lidar.tif", width: 80, height: 70, x0: 500_013.3, y0: 5_199_987.7, pixel: 2, nodata: -9999) { e, n in
            e > 500_100 && n > 5_199_960 ? .nan : PrepareTests.surface(e, n) + 0.3
        }
        return Inputs(folder: folder, ortho1: path("ortho1.tif"), ortho2: path("ortho2.tif"), dsm: path("dsm.tif"),
                      red: path("red.tif"), nir: path("nir.tif"), tri: tri, lidar: lidar)
    }

    func preparation(_ inputs: Inputs, out: String) -> ScenePreparation {
        var p = ScenePreparation(dsm: RasterSource(path: inputs.dsm), out: out)
        p.orthos = [RasterSource(path: inputs.ortho1), RasterSource(path: inputs.ortho2)]
        p.red = RasterSource(path: inputs.red)
        p.nir = RasterSource(path: inputs.nir)
        p.triangulationError = RasterSource(path: inputs.tri)
        p.lidar = RasterSource(path: inputs.lidar)
        return p
    }

    /// gdalwarp onto `grid` (given by its extent and pixel size), read back with NaN for nodata.
    func gdalwarp(_ source: String, onto grid: Grid, crs: String, resampling: String = "bilinear", folder: URL) throws -> [Float] {
        let t = grid.geoTransform
        let out = folder.appendingPathComponent("gdalwarp-\(UInt32.random(in: 0...UInt32.max)).tif").path
        _ = try gdalTool("gdalwarp", ["-q", "-t_srs", crs,
                                      "-te", "\(t[0])", "\(t[3] + Double(grid.height) * t[5])", "\(t[0] + Double(grid.width) * t[1])", "\(t[3])",
                                      "-tr", "\(t[1])", "\(-t[5])", "-r", resampling, "-ot", "Float32", "-dstnodata", "nan", source, out])
        let raster = try Raster(path: out)
        XCTAssertEqual(raster.grid.width, grid.width)
        XCTAssertEqual(raster.grid.height, grid.height)
        return try raster.readAll()
    }

    func assertSame(_ a: [Float], _ b: [Float], tolerance: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        var worst: Float = 0, nanMismatch = 0
        for (x, y) in zip(a, b) {
            if x.isNaN || y.isNaN { if x.isNaN != y.isNaN { nanMismatch += 1 }; continue }
            worst = max(worst, abs(x - y))
        }
        XCTAssertEqual(nanMismatch, 0, "\(what): nodata differs at \(nanMismatch) px", file: file, line: line)
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): largest difference", file: file, line: line)
    }

    func testMatchesGDALWarpAcrossCoordinateSystemsAndResolutions() throws {
        let inputs = try makeInputs()
        defer { try? FileManager.default.removeItem(at: inputs.folder) }
        let out = inputs.folder.appendingPathComponent("scene").path
        var p = preparation(inputs, out: out)
        p.contrast = .none
        p.stripRows = 37   // strips that do not divide the height
        var fractions: [Double] = []
        let scene = try p.run { fractions.append($0) }
        XCTAssertEqual(fractions.last ?? 0, 1, accuracy: 1e-9)
        XCTAssertEqual(fractions, fractions.sorted(), "progress only moves forward")

        // The reference's 1 m lattice, shrunk to whole pixels inside the lidar's extent
        // (x 500013.3–500120, y 5199900–5199987.7).
        let expected = try Grid(width: 106, height: 87, originX: 500_014, originY: 5_199_987, pixelSize: 1, epsg: 32610)
        XCTAssertNil(scene.grid.difference(from: expected), scene.grid.description)
        XCTAssertEqual(Scene.bandsPresent(in: out), [Band.aspDSM, Band.lidarDSM, Band.ndvi, Band.nodataMask, Band.ortho1,
                                                     Band.ortho2, Band.triangulationError].sorted())
        for band in scene.bands {
            let raster = try Raster(path: Scene.file(out, band))
            XCTAssertNil(raster.grid.difference(from: expected), band)
            XCTAssertEqual(raster.dataTypeName, "Float32")
        }
        let info = try gdalinfo(Scene.file(out, Band.aspDSM))
        let structure = try XCTUnwrap((info["metadata"] as? [String: Any])?["IMAGE_STRUCTURE"] as? [String: String])
        XCTAssertEqual(structure["COMPRESSION"], "DEFLATE")
        XCTAssertEqual(structure["PREDICTOR"], "3")

        let folder = inputs.folder
        let dsm = try gdalwarp(inputs.dsm, onto: expected, crs: "EPSG:32610", folder: folder)
        let mine = try Raster(path: Scene.file(out, Band.aspDSM)).readAll()
        assertSame(mine, dsm, tolerance: 1e-3, "asp_dsm")
        XCTAssertTrue(mine.contains { $0.isNaN }, "the DSM hole is kept")
        // gdalwarp is right, not just equal: the surface itself, up to bilinear's smoothing of the
        // texture twice resampled.
        var surfaceError: Float = 0
        for y in 0..<expected.height { for x in 0..<expected.width where !mine[y * 106 + x].isNaN {
            surfaceError = max(surfaceError, abs(mine[y * 106 + x] - PrepareTests.surface(500_014.5 + Double(x), 5_199_986.5 - Double(y))))
        } }
        XCTAssertLessThan(surfaceError, 1.5)

        assertSame(try Raster(path: Scene.file(out, Band.lidarDSM)).readAll(),
                   try gdalwarp(inputs.lidar, onto: expected, crs: "EPSG:32610", folder: folder), tolerance: 1e-3, "lidar_data")
        assertSame(try Raster(path: Scene.file(out, Band.triangulationError)).readAll(),
                   try gdalwarp(inputs.tri, onto: expected, crs: "EPSG:32610", folder: folder), tolerance: 1e-5, "triangulation_error")
        let ortho1 = try Raster(path: Scene.file(out, Band.ortho1)).readAll()
        assertSame(ortho1, try gdalwarp(inputs.ortho1, onto: expected, crs: "EPSG:32610", folder: folder), tolerance: 0, "ortho_channel1")
        // On its own lattice the reference is copied: pixel (14, 13) of ortho1 is pixel (0, 0) here.
        let original = try Raster(path: inputs.ortho1).readAll()
        XCTAssertEqual(ortho1[0], original[13 * 120 + 14])
        // A three-band ortho becomes the mean of its bands.
        let bands = try (1...3).map { b -> [Float] in
            let single = folder.appendingPathComponent("ortho2_b\(b).tif").path
            _ = try gdalTool("gdal_translate", ["-q", "-b", "\(b)", inputs.ortho2, single])
            return try gdalwarp(single, onto: expected, crs: "EPSG:32610", folder: folder)
        }
        let mean = (0..<expected.pixelCount).map { (bands[0][$0] + bands[1][$0] + bands[2][$0]) / 3 }
        assertSame(try Raster(path: Scene.file(out, Band.ortho2)).readAll(), mean, tolerance: 1e-3, "ortho_channel2")

        let red = try gdalwarp(inputs.red, onto: expected, crs: "EPSG:32610", folder: folder)
        let nir = try gdalwarp(inputs.nir, onto: expected, crs: "EPSG:32610", folder: folder)
        let ndvi = try Raster(path: Scene.file(out, Band.ndvi)).readAll()
        assertSame(ndvi, (0..<expected.pixelCount).map { (nir[$0] - red[$0]) / (nir[$0] + red[$0]) }, tolerance: 1e-5, "ndvi")
        XCTAssertTrue(ndvi.allSatisfy { $0.isNaN || ($0 > -0.1 && $0 < 0.9) })

        let lidar = try Raster(path: Scene.file(out, Band.lidarDSM)).readAll()
        let mask = try Raster(path: Scene.file(out, Band.nodataMask)).readAll()
        let planes = [mine, lidar, ndvi, ortho1]
        for i in 0..<expected.pixelCount {
            let valid = planes.allSatisfy { !$0[i].isNaN }
            XCTAssertEqual(mask[i], valid ? 1 : 0, "nodata_mask at \(i)")
        }
        let usable = mask.filter { $0 == 1 }.count
        XCTAssertTrue(usable > expected.pixelCount / 2 && usable < expected.pixelCount, "holes in the DSM and lidar are masked")
        XCTAssertEqual(scene.validFraction[Band.nodataMask]!, Double(usable) / Double(expected.pixelCount), accuracy: 1e-12)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") }, [],
                       "no temporary folder is left")
    }

    func testAnotherCoordinateSystemAndResolutionOnMultiplesOfThePixel() throws {
        let inputs = try makeInputs()
        defer { try? FileManager.default.removeItem(at: inputs.folder) }
        let out = inputs.folder.appendingPathComponent("scene").path
        var p = ScenePreparation(dsm: RasterSource(path: inputs.dsm), out: out)
        p.orthos = [RasterSource(path: inputs.ortho1)]
        p.lidar = RasterSource(path: inputs.lidar)
        p.crs = "EPSG:3857"
        p.resolution = 2.5
        p.resampling = .cubic
        p.contrast = .stretch
        let scene = try p.run()
        let t = scene.grid.geoTransform
        XCTAssertEqual(t[1], 2.5)
        XCTAssertEqual(t[5], -2.5)
        XCTAssertEqual((t[0] / 2.5).rounded() * 2.5, t[0], accuracy: 1e-6)
        XCTAssertEqual((t[3] / 2.5).rounded() * 2.5, t[3], accuracy: 1e-6)
        XCTAssertTrue(Grid.crsName(scene.grid.crsWKT).contains("3857"), Grid.crsName(scene.grid.crsWKT))
        // Mercator stretches metres by 1/cos(47°) ≈ 1.47: the ~106×87 m overlap is ~156×128 units.
        XCTAssertEqual(Double(scene.grid.width) * 2.5, 156, accuracy: 6)
        XCTAssertEqual(Double(scene.grid.height) * 2.5, 128, accuracy: 6)
        for (band, source) in [(Band.aspDSM, inputs.dsm), (Band.lidarDSM, inputs.lidar)] {
            assertSame(try Raster(path: Scene.file(out, band)).readAll(),
                       try gdalwarp(source, onto: scene.grid, crs: "EPSG:3857", resampling: "cubic", folder: inputs.folder),
                       tolerance: 1e-3, band)
        }
        // The 2–98 % stretch: values in [0, 1], about 2 % at each end, linear in between.
        let warped = try gdalwarp(inputs.ortho1, onto: scene.grid, crs: "EPSG:3857", resampling: "cubic", folder: inputs.folder)
        let stretched = try Raster(path: Scene.file(out, Band.ortho1)).readAll()
        let valid = warped.filter { !$0.isNaN }.sorted()
        let low = valid[Int(0.02 * Double(valid.count))], high = valid[Int(0.98 * Double(valid.count))]
        var worst: Float = 0
        for (v, s) in zip(warped, stretched) where !v.isNaN {
            XCTAssertTrue(s >= 0 && s <= 1)
            worst = max(worst, abs(s - min(1, max(0, (v - low) / (high - low)))))
        }
        XCTAssertLessThan(worst, 0.02, "linear between the 2nd and 98th percentile")
        let zeros = stretched.filter { $0 == 0 }.count, ones = stretched.filter { $0 == 1 }.count
        XCTAssertEqual(Double(zeros) / Double(valid.count), 0.02, accuracy: 0.01)
        XCTAssertEqual(Double(ones) / Double(valid.count), 0.02, accuracy: 0.01)
    }

    /// Prepares a scene of one ortho (and a flat DSM) and returns the normalized ortho.
    func normalized(_ ortho: [Float], width: Int, height: Int, contrast: Contrast = .clahe) throws -> [Float] {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: width, height: height)
        let orthoPath = folder.appendingPathComponent("ortho.tif").path, dsmPath = folder.appendingPathComponent("dsm.tif").path
        try RasterWriter.write(ortho, grid: grid, nodata: -9999, to: orthoPath)
        try RasterWriter.write([Float](repeating: 100, count: grid.pixelCount), grid: grid, nodata: -9999, to: dsmPath)
        var p = ScenePreparation(dsm: RasterSource(path: dsmPath), out: folder.appendingPathComponent("scene").path)
        p.orthos = [RasterSource(path: orthoPath)]
        p.contrast = contrast
        p.stripRows = 50
        return try Raster(path: Scene.file(try p.run().folder, Band.ortho1)).readAll()
    }

    func testCLAHEWithEqualRegionsIsOneMonotonicMapping() throws {
        // Every 21×17 region holds the same values, so every region's mapping is the same and the
        // result depends on the value alone, whatever the interpolation weights.
        let width = 168, height = 136
        var ortho = [Float](repeating: 0, count: width * height)
        for y in 0..<height { for x in 0..<width {
            let k = (y % 17) * 21 + x % 21
            ortho[y * width + x] = 500 + Float((k * 37) % 357) * (k % 3 == 0 ? 0.1 : 0.6)
        } }
        let out = try normalized(ortho, width: width, height: height)
        let pairs = zip(ortho, out).sorted { $0.0 < $1.0 }
        for i in 1..<pairs.count {
            XCTAssertGreaterThanOrEqual(pairs[i].1, pairs[i - 1].1 - 1e-5, "monotonic at \(pairs[i].0)")
            if pairs[i].0 == pairs[i - 1].0 { XCTAssertEqual(pairs[i].1, pairs[i - 1].1, accuracy: 1e-5, "one mapping") }
        }
        XCTAssertEqual(pairs.last!.1, 1, accuracy: 1e-5)
        XCTAssertLessThan(pairs.first!.1, 0.05)
        // A third of the pixels crowd the lowest sixth of the range; equalization spreads them.
        let crowded = pairs.filter { $0.0 < 536 }.map(\.1)
        XCTAssertGreaterThan(crowded.max()! - crowded.min()!, 0.25)
    }

    func testCLAHERaisesLocalContrastAndKeepsNodata() throws {
        let width = 160, height = 128
        // Low contrast on the left half (a tenth of the range), high on the right, a nodata square.
        var ortho = [Float](repeating: 0, count: width * height)
        var random = SystemRandomNumberGenerator()
        for y in 0..<height { for x in 0..<width {
            let noise = Float.random(in: 0..<1, using: &random)
            ortho[y * width + x] = x < 80 ? 500 + 150 * noise : 200 + 1500 * noise
            if (70..<90).contains(x) && (54..<74).contains(y) { ortho[y * width + x] = .nan }
        } }
        let out = try normalized(ortho, width: width, height: height)
        XCTAssertTrue(zip(ortho, out).allSatisfy { $0.isNaN == $1.isNaN }, "nodata stays nodata")
        XCTAssertTrue(out.allSatisfy { $0.isNaN || ($0 >= 0 && $0 <= 1) })
        func spread(_ values: [Float], _ xs: ClosedRange<Int>) -> Float {
            var picked: [Float] = []
            for y in 10..<118 { for x in xs where !values[y * width + x].isNaN { picked.append(values[y * width + x]) } }
            picked.sort()
            return picked[picked.count * 9 / 10] - picked[picked.count / 10]
        }
        // Before: 0.08 of the full range; the 1 % clip limit lets CLAHE roughly triple it.
        XCTAssertEqual(spread(ortho, 5...60) / 1500, 0.08, accuracy: 0.01)
        XCTAssertGreaterThan(spread(out, 5...60), 0.18)
        XCTAssertGreaterThan(spread(out, 100...155), 0.6)
    }

    func testFillsSmallDSMHolesOnly() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 64, height: 64)
        var dsm = [Float](repeating: 0, count: grid.pixelCount)
        for y in 0..<64 { for x in 0..<64 { dsm[y * 64 + x] = Float(100 + x) } }
        for (x, y) in [(10, 10), (11, 10), (10, 11)] { dsm[y * 64 + x] = .nan }
        for y in 30..<60 { for x in 30..<60 { dsm[y * 64 + x] = .nan } }
        let path = folder.appendingPathComponent("dsm.tif").path
        try RasterWriter.write(dsm, grid: grid, nodata: -3.4028234663852886e38, to: path)
        var p = ScenePreparation(dsm: RasterSource(path: path), out: folder.appendingPathComponent("scene").path)
        p.fillHoles = 4
        let out = try Raster(path: Scene.file(try p.run().folder, Band.aspDSM)).readAll()
        XCTAssertEqual(out[10 * 64 + 10], 110, accuracy: 1.5, "filled from its neighbours")
        XCTAssertEqual(out[11 * 64 + 10], 110, accuracy: 1.5)
        XCTAssertTrue(out[45 * 64 + 45].isNaN, "a hole wider than twice the distance keeps its centre")
        XCTAssertFalse(out[31 * 64 + 31].isNaN, "its rim is filled")
        let mask = try Raster(path: Scene.file(folder.appendingPathComponent("scene").path, Band.nodataMask)).readAll()
        XCTAssertEqual(mask[10 * 64 + 10], 1)
        XCTAssertEqual(mask[45 * 64 + 45], 0)
    }

    func testBadInputsFailInOneLineAndLeaveNothing() throws {
        let inputs = try makeInputs()
        let folder = inputs.folder
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("scene").path
        func refused(_ p: ScenePreparation, _ phrase: String, naming file: String, line: UInt = #line) {
            XCTAssertThrowsError(try p.run(), line: line) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(phrase), "expected “\(phrase)” in: \(text)", line: line)
                XCTAssertTrue(text.hasPrefix(file), "names \(file): \(text)", line: line)
                XCTAssertFalse(text.contains("\n"), line: line)
            }
            let left = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            XCTAssertFalse(left.contains { $0.hasPrefix(".") || $0 == "scene" }, "left behind: \(left)", line: line)
        }
        var p = preparation(inputs, out: out)
        p.lidar = RasterSource(path: folder.appendingPathComponent("missing.tif").path)
        refused(p, "no such file", naming: p.lidar!.path)

        let text = folder.appendingPathComponent("notes.tif").path
        try "not a raster".write(toFile: text, atomically: true, encoding: .utf8)
        p = preparation(inputs, out: out)
        p.triangulationError = RasterSource(path: text)
        refused(p, "not a readable raster", naming: text)

        p = preparation(inputs, out: out)
        p.dsm = RasterSource(inputs.ortho2 + ":4")
        refused(p, "has 3 bands; there is no band 4", naming: inputs.ortho2)
        p.dsm = RasterSource(path: inputs.ortho2)
        refused(p, "choose one as", naming: inputs.ortho2)

        let complex = folder.appendingPathComponent("complex.tif").path
        _ = try gdalTool("gdal_translate", ["-q", "-ot", "CFloat32", inputs.tri, complex])
        p = preparation(inputs, out: out)
        p.triangulationError = RasterSource(path: complex)
        refused(p, "not a real number type", naming: complex)

        let far = folder.appendingPathComponent("far.tif").path
        try RasterWriter.write([1, 2, 3, 4], grid: try testGrid(width: 2, height: 2, originX: 600_000), nodata: nil, to: far)
        p = preparation(inputs, out: out)
        p.lidar = RasterSource(path: far)
        refused(p, "does not overlap", naming: far)

        let empty = folder.appendingPathComponent("empty.tif").path
        try RasterWriter.write([Float](repeating: .nan, count: 80 * 70),
                               grid: try Grid(width: 80, height: 70, originX: 500_013.3, originY: 5_199_987.7, pixelSize: 2, epsg: 32610),
                               nodata: -9999, to: empty)
        p = preparation(inputs, out: out)
        p.lidar = RasterSource(path: empty)
        refused(p, "no pixel is valid in every input", naming: out)

        p = preparation(inputs, out: out)
        p.nir = nil
        refused(p, "needs both a red and a NIR raster", naming: inputs.red)

        p = preparation(inputs, out: folder.appendingPathComponent("no/scene").path)
        refused(p, "does not exist", naming: p.out)

        p = preparation(inputs, out: out)
        p.crs = "EPSG:999999"
        refused(p, "not a coordinate system", naming: "EPSG:999999")

        // An existing scene is kept unless overwrite; with it, bands the new scene lacks go.
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        try RasterWriter.write([1], grid: try testGrid(width: 1, height: 1), nodata: nil, to: Scene.file(out, Band.lidarDTM))
        p = preparation(inputs, out: out)
        XCTAssertThrowsError(try p.run()) { XCTAssertTrue("\($0)".contains("already holds a scene"), "\($0)") }
        XCTAssertEqual(Scene.bandsPresent(in: out), [Band.lidarDTM])
        p.overwrite = true
        p.contrast = .none
        _ = try p.run()
        XCTAssertFalse(Scene.bandsPresent(in: out).contains(Band.lidarDTM))
        XCTAssertTrue(Scene.bandsPresent(in: out).contains(Band.ortho2))
    }

    func testSourceSyntax() {
        XCTAssertEqual(RasterSource("a/b.tif:3"), RasterSource(path: "a/b.tif", band: 3))
        XCTAssertEqual(RasterSource("a/b.tif"), RasterSource(path: "a/b.tif"))
        XCTAssertEqual(RasterSource("NETCDF:x.nc:var"), RasterSource(path: "NETCDF:x.nc:var"))
    }
}
