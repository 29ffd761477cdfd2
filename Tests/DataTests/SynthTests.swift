import Data
import Foundation
import XCTest

final class SynthTests: XCTestCase {
    func testStripsDoNotShowAndTheSeedDecides() {
        let scene = SyntheticScene(width: 96, height: 80, seed: 5)
        let whole = scene.render(y0: 0, rows: 80)
        let upper = scene.render(y0: 0, rows: 33), lower = scene.render(y0: 33, rows: 47)
        for band in SyntheticScene.bands {
            let joined = upper[band]! + lower[band]!
            XCTAssertEqual(joined.count, whole[band]!.count)
            for i in joined.indices {
                XCTAssertTrue(joined[i] == whole[band]![i] || (joined[i].isNaN && whole[band]![i].isNaN), "\(band) pixel \(i)")
            }
        }
        let again = SyntheticScene(width: 96, height: 80, seed: 5).render(y0: 0, rows: 80)
        let other = SyntheticScene(width: 96, height: 80, seed: 6).render(y0: 0, rows: 80)
        XCTAssertEqual(again[Band.lidarDSM]!.filter { !$0.isNaN }, whole[Band.lidarDSM]!.filter { !$0.isNaN })
        XCTAssertNotEqual(other[Band.lidarDTM]!.filter { !$0.isNaN }, whole[Band.lidarDTM]!.filter { !$0.isNaN })
    }

    func testSceneLooksAndBehavesLikeOne() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("scene").path
        var fractions: [Double] = []
        try SyntheticScene(width: 200, height: 160, seed: 3).write(to: path, stripRows: 64) { fractions.append($0) }
        XCTAssertEqual(fractions.last, 1)
        XCTAssertEqual(Scene.bandsPresent(in: path), SyntheticScene.bands.sorted())
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["scene"])

        let info = try gdalinfo(Scene.file(path, Band.aspDSM))
        XCTAssertEqual(info["size"] as? [Int], [200, 160])
        XCTAssertEqual(info["geoTransform"] as? [Double], [580_000, 1, 0, 5_410_000, 0, -1])
        let wkt = try XCTUnwrap((info["coordinateSystem"] as? [String: Any])?["wkt"] as? String)
        XCTAssertTrue(wkt.contains("UTM zone 10N"), wkt)

        let scene = try Scene(folder: path, bands: Band.inputs, target: Band.lidarDSM)
        func all(_ band: String) throws -> [Float] { try Raster(path: Scene.file(path, band)).readAll() }
        let asp = try all(Band.aspDSM), dsm = try all(Band.lidarDSM), dtm = try all(Band.lidarDTM)
        let ndvi = try all(Band.ndvi), mask = try all(Band.nodataMask), tri = try all(Band.triangulationError)
        XCTAssertEqual(scene.aspDSM.nodata, -Double(Float.greatestFiniteMagnitude))
        XCTAssertNil(try Raster(path: Scene.file(path, Band.triangulationError)).nodata, "NaN without a declaration")

        let holes = asp.filter(\.isNaN).count
        XCTAssert((0.01...0.25).contains(Double(holes) / Double(asp.count)), "holes \(holes)")
        var treeNDVI: [Float] = [], groundNDVI: [Float] = [], errors: [(Float, Float)] = []
        for i in asp.indices {
            XCTAssertEqual(mask[i], asp[i].isNaN ? 0 : 1)
            XCTAssertEqual(tri[i].isNaN, asp[i].isNaN)
            guard !dsm[i].isNaN else { XCTAssertTrue(dtm[i].isNaN); continue }
            XCTAssertGreaterThanOrEqual(dsm[i], dtm[i])
            if dsm[i] - dtm[i] > 8 && ndvi[i] > 0.5 { treeNDVI.append(ndvi[i]) }
            if dsm[i] - dtm[i] < 0.1 { groundNDVI.append(ndvi[i]) }
            if !asp[i].isNaN { errors.append((abs(asp[i] - dsm[i]), tri[i])) }
        }
        XCTAssertGreaterThan(treeNDVI.count, 500, "there are trees")
        XCTAssertGreaterThan(mean(treeNDVI), mean(groundNDVI) + 0.2)
        // Large stereo errors come with large triangulation errors.
        let sorted = errors.sorted { $0.1 < $1.1 }
        let lowTri = mean(sorted.prefix(sorted.count / 2).map(\.0)), highTri = mean(sorted.suffix(sorted.count / 2).map(\.0))
        XCTAssertGreaterThan(highTri, 1.5 * lowTri)

        XCTAssertThrowsError(try SyntheticScene(width: 8, height: 8, seed: 0).write(to: path)) {
            XCTAssertTrue(String(describing: $0).contains("already holds a scene"), "\($0)")
        }
        XCTAssertThrowsError(try SyntheticScene(width: 8, height: 8, seed: 0).write(to: folder.appendingPathComponent("a/b").path)) {
            XCTAssertTrue(String(describing: $0).contains("does not exist"), "\($0)")
        }
    }

    func mean(_ values: [Float]) -> Float { values.reduce(0, +) / Float(max(1, values.count)) }
}
