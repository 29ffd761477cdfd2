import Data
import Foundation
import XCTest

/// Each role's rectangles (stripes, their margin, train_split) and the chips drawn from them.
final class SceneRegionsTests: XCTestCase {
    func window(_ x: Int, _ y: Int, _ w: Int, _ h: Int) -> PixelWindow { PixelWindow(x: x, y: y, width: w, height: h) }

    func testStripesAndTheirMargin() {
        // 5 stripes of 20 px along x; training (stripes 0–2) stops 8 px before validation (stripe 3).
        let a = SceneRegions.stripes(count: 5, axis: .x, validation: 3, test: 4, width: 100, height: 40, margin: 8)
        XCTAssertEqual(a, SceneRegions(train: [window(0, 0, 52, 40)], validation: [window(60, 0, 20, 40)], test: [window(80, 0, 20, 40)]))
        // Held-out stripes 4 and 0 (fold 1 of the above): training is stripes 1–3, less a margin on each side.
        let b = SceneRegions.stripes(count: 5, axis: .x, validation: 4, test: 0, width: 100, height: 40, margin: 8)
        XCTAssertEqual(b, SceneRegions(train: [window(28, 0, 44, 40)], validation: [window(80, 0, 20, 40)], test: [window(0, 0, 20, 40)]))
        // Validation in the middle splits training into two rectangles, each with its margin.
        let c = SceneRegions.stripes(count: 5, axis: .x, validation: 2, test: nil, width: 100, height: 40, margin: 8)
        XCTAssertEqual(c.train, [window(0, 0, 32, 40), window(68, 0, 32, 40)])
        XCTAssertEqual(c.test, [])
        // Along y, 103 rows in 4 stripes: boundaries at 0, 25, 51, 77, 103.
        let d = SceneRegions.stripes(count: 4, axis: .y, validation: 0, test: 2, width: 30, height: 103, margin: 5)
        XCTAssertEqual(d, SceneRegions(train: [window(0, 30, 30, 16), window(0, 82, 30, 21)],
                                       validation: [window(0, 0, 30, 25)], test: [window(0, 51, 30, 26)]))
        // A training stripe narrower than two margins between held-out stripes gives no rectangle.
        let e = SceneRegions.stripes(count: 5, axis: .x, validation: 1, test: 3, width: 100, height: 40, margin: 10)
        XCTAssertEqual(e.train, [window(0, 0, 10, 40), window(90, 0, 10, 40)])
        XCTAssertEqual(SceneRegions.trainSplit(0.8, width: 161, height: 7),
                       SceneRegions(train: [window(0, 0, 128, 7)], validation: [window(128, 0, 33, 7)]))
    }

    /// Thousands of chips of each role: every one lies wholly inside one of its role's rectangles,
    /// and a role of two rectangles draws from both.
    func testChipsStayInsideTheirRolesRectangles() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let map = try gradientSceneMap(folder, width: 160, height: 96)
        // Stripes of 32 px, chip 16: training is [0, 56) and [104, 120), validation [64, 96), test [128, 160).
        let regions = SceneRegions.stripes(count: 5, axis: .x, validation: 2, test: 4, width: 160, height: 96, margin: 8)
        XCTAssertEqual(regions.train, [window(0, 0, 56, 96), window(104, 0, 16, 96)])
        let train = try ChipSampler(maps: [map], region: .train, windows: [regions.train], chipSize: 16, seed: 5)
        let validation = try ChipSampler(maps: [map], region: .validation, windows: [regions.validation], chipSize: 16, seed: 5)
        func inside(_ chip: ChipPlacement, _ windows: [PixelWindow]) -> Bool {
            windows.contains { chip.x >= $0.x && chip.y >= $0.y && chip.x + 16 <= $0.x + $0.width && chip.y + 16 <= $0.y + $0.height }
        }
        var pieces = [0, 0]
        for step in 0..<500 {
            for index in 0..<8 {
                let chip = train.chip(step: step, index: index)
                XCTAssertTrue(inside(chip, regions.train), "\(chip)")
                pieces[chip.x < 100 ? 0 : 1] += 1
            }
        }
        XCTAssertGreaterThan(pieces[1], 100, "the second rectangle is drawn from too: \(pieces)")
        for index in 0..<2000 {
            let chip = validation.chip(step: 0, index: index)
            XCTAssertTrue(inside(chip, regions.validation), "\(chip)")
        }
        // A role whose only rectangle is smaller than a chip is refused, naming the scene.
        XCTAssertThrowsError(try ChipSampler(maps: [map], region: .validation, windows: [[window(64, 0, 12, 96)]], chipSize: 16, seed: 5)) {
            XCTAssertEqual(String(describing: $0), "\(folder.path): chip of 16 px is larger than the validation region (12×96 px at (64, 0) of a 160×96 px scene)")
        }
        // A scene without a rectangle of the role takes no part in it.
        let none = try ChipSampler(maps: [map, map], region: .train, windows: [[], regions.train], chipSize: 16, seed: 5)
        XCTAssertEqual(none.usablePixels[0], 0)
        XCTAssertTrue((0..<200).allSatisfy { none.chip(step: $0, index: 0).scene == 1 })
    }

    /// gsf from several rectangles draws its chips inside them only: on a ramp whose slope differs
    /// inside and outside the rectangles, the estimate is the inside slope's.
    func testGSFFromRectanglesOnly() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("ramp.tif").path
        let grid = try testGrid(width: 120, height: 80)
        // Slope 2 in x < 40 and x >= 80, slope 10 in between (z continuous does not matter for a chip's std).
        try RasterWriter.write((0..<grid.pixelCount).map { i in let x = i % 120; return Float((40..<80).contains(x) ? 10 * x : 2 * x) },
                               grid: grid, nodata: nil, to: path)
        let gsf = try XCTUnwrap(Statistics.gsf(Raster(path: path), chipSize: 32, chips: 50,
                                               windows: [window(0, 0, 40, 80), window(80, 0, 40, 80)]))
        XCTAssertEqual(gsf, 2 * ((32.0 * 32 - 1) / 12).squareRoot(), accuracy: 1e-6)
    }
}
