import Data
import Foundation
import XCTest

final class RasterTests: XCTestCase {
    func testRoundTripMatchesGDALTools() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try Grid(width: 70, height: 45, originX: 583_000.5, originY: 5_400_321.25, pixelSize: 2, epsg: 32610)
        var values = (0..<grid.pixelCount).map { Float($0 % 97) * 0.25 - 3 }
        values[5] = .nan
        values[200] = .nan
        let path = folder.appendingPathComponent("a.tif").path
        let nodata = -3.4028234663852886e38
        try RasterWriter.write(values, grid: grid, nodata: nodata, to: path)

        let info = try gdalinfo(path)
        XCTAssertEqual(info["size"] as? [Int], [70, 45])
        let transform = try XCTUnwrap(info["geoTransform"] as? [Double])
        XCTAssertEqual(transform, [583_000.5, 2, 0, 5_400_321.25, 0, -2])
        let band = try XCTUnwrap((info["bands"] as? [[String: Any]])?.first)
        XCTAssertEqual(band["type"] as? String, "Float32")
        XCTAssertEqual(try XCTUnwrap(band["noDataValue"] as? Double), nodata, accuracy: 1e31)
        let structure = try XCTUnwrap((info["metadata"] as? [String: Any])?["IMAGE_STRUCTURE"] as? [String: String])
        XCTAssertEqual(structure["COMPRESSION"], "DEFLATE")
        XCTAssertEqual(structure["PREDICTOR"], "3")
        XCTAssertEqual(band["block"] as? [Int], [256, 256])
        let wkt = try XCTUnwrap((info["coordinateSystem"] as? [String: Any])?["wkt"] as? String)
        XCTAssertTrue(wkt.contains("32610"), "CRS is UTM 10N")
        // GDAL's statistics skip nodata: the two NaN pixels were written as the nodata value.
        XCTAssertEqual(try XCTUnwrap(band["computedMin"] as? Double), -3, accuracy: 1e-6)

        let raw = try gdalTranslateValues(path, folder: folder)
        XCTAssertEqual(raw.count, grid.pixelCount)
        XCTAssertEqual(raw[5], -Float.greatestFiniteMagnitude)
        let raster = try Raster(path: path)
        XCTAssertNil(raster.grid.difference(from: grid))
        XCTAssertEqual(raster.nodata!, nodata, accuracy: 1e31)
        let back = try raster.readAll()
        for i in 0..<values.count {
            if values[i].isNaN { XCTAssertTrue(back[i].isNaN) } else { XCTAssertEqual(back[i], values[i]); XCTAssertEqual(raw[i], values[i]) }
        }
        let window = try raster.read(x: 10, y: 20, width: 7, height: 3)
        for r in 0..<3 { for c in 0..<7 { XCTAssertEqual(window[r * 7 + c], back[(20 + r) * 70 + 10 + c]) } }
        XCTAssertThrowsError(try raster.read(x: 65, y: 0, width: 7, height: 3))
    }

    func testEveryNodataEncodingReadsAsNaN() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 4, height: 1)
        // Written with GDAL's tool so the declared value is ASP's rounded text, not −FLT_MAX.
        let raw = folder.appendingPathComponent("raw.tif").path
        try RasterWriter.write([1, -Float.greatestFiniteMagnitude, .nan, 4], grid: grid, nodata: nil, to: raw)
        let asp = folder.appendingPathComponent("asp.tif").path
        _ = try gdalTool("gdal_translate", ["-q", "-a_nodata", "-3.40282e+38", raw, asp])
        let read = try Raster(path: asp).readAll()
        XCTAssertEqual(read[0], 1)
        XCTAssertTrue(read[1].isNaN, "−FLT_MAX matches a declared −3.40282e+38")
        XCTAssertTrue(read[2].isNaN)
        XCTAssertEqual(read[3], 4)
        let undeclared = try Raster(path: raw).readAll()
        XCTAssertEqual(undeclared[1], -Float.greatestFiniteMagnitude, "without a declaration only NaN is nodata")
        XCTAssertTrue(undeclared[2].isNaN)

        let integer = folder.appendingPathComponent("int.tif").path
        _ = try gdalTool("gdal_translate", ["-q", "-ot", "Int16", "-a_nodata", "4", raw, integer])
        let ints = try Raster(path: integer).readAll()
        XCTAssertEqual(ints[0], 1)
        XCTAssertTrue(ints[3].isNaN, "declared integer nodata")
    }

    func testBadFilesAreNamedInOneLine() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = folder.appendingPathComponent("notes.tif").path
        try "not a raster".write(toFile: text, atomically: true, encoding: .utf8)
        for (path, phrase) in [(text, "not a readable raster"), (folder.appendingPathComponent("none.tif").path, "no such file"),
                               (folder.path, "is a folder")] {
            XCTAssertThrowsError(try Raster(path: path)) { error in
                let line = String(describing: error)
                XCTAssertTrue(line.hasPrefix(path), line)
                XCTAssertTrue(line.contains(phrase), line)
                XCTAssertFalse(line.contains("\n"), line)
            }
        }
        let grid = try testGrid(width: 8, height: 8)
        let complex = folder.appendingPathComponent("complex.tif").path
        let source = folder.appendingPathComponent("ok.tif").path
        try RasterWriter.write([Float](repeating: 1, count: 64), grid: grid, nodata: nil, to: source)
        _ = try gdalTool("gdal_translate", ["-q", "-ot", "CFloat32", source, complex])
        XCTAssertThrowsError(try Raster(path: complex)) { XCTAssertTrue(String(describing: $0).contains("CFloat32"), "\($0)") }
    }

    func testWriterRefusesAndLeavesNothingBehind() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 8, height: 8)
        let values = [Float](repeating: 2, count: 64)
        let missing = folder.appendingPathComponent("no/such/out.tif").path
        XCTAssertThrowsError(try RasterWriter.write(values, grid: grid, nodata: nil, to: missing)) {
            XCTAssertTrue(String(describing: $0).contains("does not exist"), "\($0)")
        }
        let path = folder.appendingPathComponent("out.tif").path
        try RasterWriter.write(values, grid: grid, nodata: nil, to: path)
        XCTAssertThrowsError(try RasterWriter.write(values, grid: grid, nodata: nil, to: path)) {
            XCTAssertTrue(String(describing: $0).contains("already exists"), "\($0)")
        }
        try RasterWriter.write(values.map { $0 + 1 }, grid: grid, nodata: nil, to: path, overwrite: true)
        XCTAssertEqual(try Raster(path: path).readAll()[0], 3)
        do {
            let abandoned = try RasterWriter(path: folder.appendingPathComponent("abandoned.tif").path, grid: grid, nodata: nil)
            try abandoned.write(x: 0, y: 0, width: 8, height: 1, from: Array(values[0..<8]))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(), ["out.tif"])
    }

    func testCOGOutput() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 300, height: 260)
        let values = (0..<grid.pixelCount).map { Float($0 % 300) }
        let path = folder.appendingPathComponent("cog.tif").path
        try RasterWriter.write(values, grid: grid, nodata: -9999, to: path, format: .cog)
        let info = try gdalinfo(path)
        let structure = try XCTUnwrap((info["metadata"] as? [String: Any])?["IMAGE_STRUCTURE"] as? [String: String])
        XCTAssertEqual(structure["LAYOUT"], "COG")
        XCTAssertEqual(try Raster(path: path).readAll(), values)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["cog.tif"])
    }

    func testGridDifferencesAreNamed() throws {
        let grid = try testGrid(width: 64, height: 64)
        XCTAssertNil(grid.difference(from: grid))
        var wider = grid
        wider.width += 1
        XCTAssertTrue(grid.difference(from: wider)!.contains("size"))
        var shifted = grid
        shifted.geoTransform[0] += 1
        XCTAssertTrue(grid.difference(from: shifted)!.contains("origin x"))
        var otherCRS = grid
        otherCRS.crsWKT = try Grid.wkt(epsg: 32611)
        XCTAssertTrue(grid.difference(from: otherCRS)!.contains("coordinate system"))
    }
}
