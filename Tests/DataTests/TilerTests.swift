import Data
import Foundation
import XCTest

final class TilerTests: XCTestCase {
    func testOriginsCoverEveryPixelAndEndAtTheEdge() {
        XCTAssertEqual(Tiler.origins(length: 100, chip: 32, stride: 16), [0, 16, 32, 48, 64, 68])
        XCTAssertEqual(Tiler.origins(length: 32, chip: 32, stride: 16), [0])
        XCTAssertEqual(Tiler.origins(length: 33, chip: 32, stride: 32), [0, 1])
    }

    func makeScene(_ folder: URL, width: Int, height: Int) throws -> Scene {
        let grid = try Grid(width: width, height: height, originX: 600_010, originY: 5_100_020, pixelSize: 0.5, epsg: 32610)
        try writeScene(folder, grid: grid, bands: [
            Band.aspDSM: { x, y in (x - 40) * (x - 40) + (y - 20) * (y - 20) < 30 ? .nan : Float(x) * 0.75 + Float(y * y) * 0.01 + 200 },
            Band.ortho1: { x, y in x == 3 ? .nan : Float((x ^ y) & 7) },
        ])
        return try Scene(folder: folder.path, bands: [Band.aspDSM, Band.ortho1], target: nil)
    }

    func testConstantPredictionComesBackExactlyEverywhere() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let scene = try makeScene(folder, width: 101, height: 70)
        let out = folder.appendingPathComponent("refined.tif").path
        var batches: [Int] = []
        var fractions: [Double] = []
        let constant: Float = 123.456
        var tiler = Tiler(chipSize: 32, stride: 12, batchSize: 3)
        tiler.threads = 3   // blending split over three tile-row ranges of the chip
        try tiler.run(scene: scene, output: out, predict: { inputs, count, outputs in
            batches.append(count)
            for i in 0..<count * 2 * 32 * 32 { XCTAssertTrue(inputs[i].isFinite) }
            for i in 0..<count * 32 * 32 { outputs[i] = constant }
        }, progress: { fractions.append($0) })
        let tiles = Tiler.origins(length: 101, chip: 32, stride: 12).count * Tiler.origins(length: 70, chip: 32, stride: 12).count
        XCTAssertEqual(batches.reduce(0, +), tiles)
        XCTAssertTrue(batches.allSatisfy { $0 <= 3 })
        XCTAssertEqual(fractions.last, 1)
        let asp = try scene.aspDSM.readAll()
        let refined = try Raster(path: out)
        XCTAssertNil(refined.grid.difference(from: scene.grid))
        XCTAssertEqual(refined.nodata, scene.aspDSM.nodata)
        let values = try refined.readAll()
        var holes = 0
        for i in 0..<values.count {
            if asp[i].isNaN { XCTAssertTrue(values[i].isNaN); holes += 1 } else { XCTAssertEqual(values[i], constant, "pixel \(i)") }
        }
        XCTAssertGreaterThan(holes, 50)
        let info = try gdalinfo(out)
        XCTAssertEqual(info["geoTransform"] as? [Double], [600_010, 0.5, 0, 5_100_020, 0, -0.5])
    }

    func testTilesLandWhereTheyWereRead() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let scene = try makeScene(folder, width: 90, height: 77)
        let out = folder.appendingPathComponent("identity.tif").path
        // Returning the asp_dsm channel must rebuild asp_dsm: any misplaced tile would show.
        try Tiler(chipSize: 24, batchSize: 5, format: .cog).run(scene: scene, output: out) { inputs, count, outputs in
            for b in 0..<count { for i in 0..<24 * 24 { outputs[b * 24 * 24 + i] = inputs[b * 2 * 24 * 24 + i] } }
        }
        let asp = try scene.aspDSM.readAll()
        let values = try Raster(path: out).readAll()
        for i in 0..<values.count {
            if asp[i].isNaN { XCTAssertTrue(values[i].isNaN) } else { XCTAssertEqual(values[i], asp[i], accuracy: 1e-3) }
        }
    }

    func testRefusals() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let scene = try makeScene(folder, width: 40, height: 30)
        let out = folder.appendingPathComponent("x.tif").path
        XCTAssertThrowsError(try Tiler(chipSize: 32).run(scene: scene, output: out) { _, _, _ in }) {
            XCTAssertTrue(String(describing: $0).contains("larger than the 40×30 px scene"), "\($0)")
        }
        struct Boom: Error {}
        XCTAssertThrowsError(try Tiler(chipSize: 16).run(scene: scene, output: out) { _, _, _ in throw Boom() })
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") }, [])
    }
}
