import Data
import Foundation
import XCTest

final class SceneTests: XCTestCase {
    let run = [Band.aspDSM, Band.ortho1, Band.ortho2]

    func sceneBands() -> [String: (Int, Int) -> Float] {
        [Band.aspDSM: { x, y in Float(x + 1000 * y) }, Band.ortho1: { x, _ in Float(x) },
         Band.ortho2: { _, y in Float(-y) }, Band.lidarDSM: { x, y in Float(x + 1000 * y) + 0.5 }]
    }

    func testOneScreenPixelOfDifferenceIsRefused() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 64, height: 48)
        try writeScene(folder, grid: grid, bands: sceneBands())
        XCTAssertNoThrow(try Scene(folder: folder.path, bands: run, target: Band.lidarDSM))

        var wider = grid
        wider.width += 1
        try writeScene(folder, grid: wider, bands: [Band.ortho2: { _, _ in 1 }], replace: true)
        XCTAssertThrowsError(try Scene(folder: folder.path, bands: run, target: Band.lidarDSM)) { error in
            let line = String(describing: error)
            XCTAssertTrue(line.hasPrefix(Scene.file(folder.path, Band.ortho2)), line)
            XCTAssertTrue(line.contains("size 65×48"), line)
        }
        var shifted = grid
        shifted.geoTransform[3] += 1
        try writeScene(folder, grid: shifted, bands: [Band.ortho2: { _, _ in 1 }], replace: true)
        XCTAssertThrowsError(try Scene(folder: folder.path, bands: run, target: Band.lidarDSM)) {
            XCTAssertTrue(String(describing: $0).contains("origin y"), "\($0)")
        }
    }

    func testMissingPiecesAreNamed() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertThrowsError(try Scene(folder: folder.appendingPathComponent("none").path, bands: run, target: nil)) {
            XCTAssertTrue(String(describing: $0).contains("no such scene folder"))
        }
        let grid = try testGrid(width: 32, height: 32)
        try writeScene(folder, grid: grid, bands: [Band.aspDSM: { _, _ in 1 }, Band.ortho1: { _, _ in 1 }])
        XCTAssertThrowsError(try Scene(folder: folder.path, bands: run, target: nil)) {
            XCTAssertEqual(String(describing: $0), "\(Scene.file(folder.path, Band.ortho2)): missing (band ortho_channel2 is needed)")
        }
        XCTAssertThrowsError(try Scene(folder: folder.path, bands: [Band.ortho1, Band.aspDSM], target: nil))
        XCTAssertEqual(Scene.bandsPresent(in: folder.path), [Band.aspDSM, Band.ortho1])
    }

    func testChipsAreAPureFunctionOfSeedStepAndIndex() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 160, height: 96)
        try writeScene(folder, grid: grid, bands: sceneBands())
        let scene = try Scene(folder: folder.path, bands: run, target: Band.lidarDSM)
        let map = try ValidityMap(scene: scene)
        let a = try ChipSampler(maps: [map], region: .train, chipSize: 32, seed: 7)
        let b = try ChipSampler(maps: [try ValidityMap(scene: scene)], region: .train, chipSize: 32, seed: 7)
        let c = try ChipSampler(maps: [map], region: .train, chipSize: 32, seed: 8)
        var seen = Set<String>()
        var flips = 0, swaps = 0
        for step in 0..<20 {
            for index in 0..<8 {
                let chip = a.chip(step: step, index: index)
                XCTAssertEqual(chip, b.chip(step: step, index: index))
                XCTAssertEqual(chip, a.chip(step: step, index: index))
                XCTAssertLessThanOrEqual(chip.x + 32, 128, "inside the left 80 %")
                XCTAssertLessThanOrEqual(chip.y + 32, 96)
                seen.insert("\(chip.x),\(chip.y)")
                if chip.flipHorizontal { flips += 1 }
                if chip.swapOrthos { swaps += 1 }
            }
        }
        XCTAssertGreaterThan(seen.count, 100, "positions vary")
        XCTAssert((40...120).contains(flips) && (40...120).contains(swaps), "about half flipped (\(flips)) and swapped (\(swaps))")
        XCTAssertNotEqual((0..<8).map { a.chip(step: 0, index: $0) }, (0..<8).map { c.chip(step: 0, index: $0) })

        let validation = try ChipSampler(maps: [map], region: .validation, chipSize: 32, seed: 7)
        for index in 0..<30 {
            let chip = validation.chip(step: index, index: index)
            XCTAssertEqual(chip, validation.chip(step: 0, index: index), "validation ignores the step")
            XCTAssertGreaterThanOrEqual(chip.x, 128)
            XCTAssertFalse(chip.flipHorizontal || chip.flipVertical || chip.swapOrthos)
        }
        XCTAssertThrowsError(try ChipSampler(maps: [map], region: .validation, chipSize: 40, seed: 7)) {
            XCTAssertTrue(String(describing: $0).contains("larger than the validation region"), "\($0)")
        }
    }

    func testChipsBelowTheValidFractionAreRedrawn() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 128, height: 128)
        // Only the band x ∈ [40, 72) has a valid target: 32 px wide, so a 32 px chip is 100 % valid
        // only at x = 40, and at least 50 % valid for x ∈ [24, 56].
        var bands = sceneBands()
        bands[Band.lidarDSM] = { x, _ in (40..<72).contains(x) ? 1 : .nan }
        try writeScene(folder, grid: grid, bands: bands)
        let scene = try Scene(folder: folder.path, bands: run, target: Band.lidarDSM)
        let map = try ValidityMap(scene: scene)
        XCTAssertEqual(map.usablePixels(columns: 0..<128), 32 * 128)
        let sampler = try ChipSampler(maps: [map], region: .train, chipSize: 32, minValidFraction: 0.5, seed: 1)
        let reader = ChipReader(scenes: [scene], chipSize: 32)
        var inputs = [Float](repeating: 0, count: 3 * 32 * 32), target = [Float](repeating: 0, count: 32 * 32)
        var mask = target
        for index in 0..<50 {
            let chip = sampler.chip(step: 3, index: index)
            XCTAssert((24...56).contains(chip.x), "\(chip)")
            try reader.read(chip, inputs: &inputs, target: &target, mask: &mask)
            XCTAssertGreaterThanOrEqual(mask.reduce(0, +), 512)
        }
        bands[Band.lidarDSM] = { _, _ in .nan }
        try writeScene(folder, grid: grid, bands: [Band.lidarDSM: bands[Band.lidarDSM]!], replace: true)
        let empty = try Scene(folder: folder.path, bands: run, target: Band.lidarDSM)
        XCTAssertThrowsError(try ChipSampler(maps: [try ValidityMap(scene: empty)], region: .train, chipSize: 32, seed: 1)) {
            XCTAssertTrue(String(describing: $0).contains("usable pixels"), "\($0)")
        }
    }
}

extension SceneTests {
    func testScenesAreDrawnInProportionToTheirUsableArea() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 80, height: 64)
        var bands = sceneBands()
        try writeScene(folder.appendingPathComponent("full"), grid: grid, bands: bands)
        // The second scene's target is valid in the top half only: half the usable area.
        bands[Band.lidarDSM] = { _, y in y < 32 ? 1 : .nan }
        try writeScene(folder.appendingPathComponent("half"), grid: grid, bands: bands)
        let scenes = try ["full", "half"].map { try Scene(folder: folder.appendingPathComponent($0).path, bands: run, target: Band.lidarDSM) }
        let sampler = try ChipSampler(maps: try scenes.map { try ValidityMap(scene: $0) }, region: .train, chipSize: 16, seed: 2)
        XCTAssertEqual(sampler.usablePixels, [64 * 64, 64 * 32])
        var counts = [0, 0]
        for step in 0..<300 { for index in 0..<4 { counts[sampler.chip(step: step, index: index).scene] += 1 } }
        XCTAssertEqual(Double(counts[0]) / Double(counts[1]), 2, accuracy: 0.35, "\(counts)")
    }
}

final class ChipReaderTests: XCTestCase {
    func testReaderAppliesFlipsSwapFillAndMask() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 40, height: 30)
        let hole = { (x: Int, y: Int) in x == 12 && y == 7 }
        try writeScene(folder, grid: grid, bands: [
            Band.aspDSM: { x, y in hole(x, y) ? .nan : Float(100 + x + 10 * y) },
            Band.ortho1: { x, y in Float(x * y) },
            Band.ortho2: { x, _ in x == 13 ? .nan : Float(-x) },
            Band.nodataMask: { _, y in y == 9 ? 0 : 1 },
            Band.lidarDSM: { x, y in x == 14 && y == 8 ? .nan : Float(x - y) },
        ])
        // nodata_mask restricts the mask even though it is not an input of this run.
        let scene = try Scene(folder: folder.path, bands: [Band.aspDSM, Band.ortho1, Band.ortho2], target: Band.lidarDSM)
        let reader = ChipReader(scenes: [scene], chipSize: 8)
        var inputs = [Float](repeating: -1, count: 3 * 64), target = [Float](repeating: -1, count: 64), mask = target
        let x0 = 10, y0 = 5
        for (flipH, flipV, swap) in [(false, false, false), (true, false, true), (false, true, false), (true, true, true)] {
            let chip = ChipPlacement(scene: 0, x: x0, y: y0, flipHorizontal: flipH, flipVertical: flipV, swapOrthos: swap)
            try reader.read(chip, inputs: &inputs, target: &target, mask: &mask)
            var validSum = 0.0, validCount = 0.0
            for y in 0..<8 { for x in 0..<8 where !hole(x0 + x, y0 + y) { validSum += Double(100 + x0 + x + 10 * (y0 + y)); validCount += 1 } }
            let fill = Float(validSum / validCount)
            for y in 0..<8 {
                for x in 0..<8 {
                    let sx = x0 + (flipH ? 7 - x : x), sy = y0 + (flipV ? 7 - y : y)
                    let i = y * 8 + x
                    XCTAssertEqual(inputs[i], hole(sx, sy) ? fill : Float(100 + sx + 10 * sy), accuracy: 1e-4)
                    let o1 = Float(sx * sy), o2: Float = sx == 13 ? 0 : Float(-sx)
                    XCTAssertEqual(inputs[64 + i], swap ? o2 : o1)
                    XCTAssertEqual(inputs[128 + i], swap ? o1 : o2)
                    let targetValid = !(sx == 14 && sy == 8)
                    XCTAssertEqual(target[i], targetValid ? Float(sx - sy) : 0)
                    let ok = targetValid && !hole(sx, sy) && sx != 13 && sy != 9
                    XCTAssertEqual(mask[i], ok ? 1 : 0, "(\(sx), \(sy))")
                }
            }
            XCTAssertFalse(inputs.contains { !$0.isFinite })
        }
    }
}
