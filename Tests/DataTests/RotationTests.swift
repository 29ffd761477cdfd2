import Data
import Foundation
import XCTest

/// rotate90: quarter turns of whole chips (every band, target and mask), drawn from the step's
/// seed after the flips and the swap, so that runs without it draw what they drew before.
final class RotationTests: XCTestCase {
    /// numpy's rot90 of a size × size plane, `times` times: out[y][x] = in[x][size − 1 − y].
    func rot90(_ plane: [Float], _ size: Int, times: Int) -> [Float] {
        var p = plane
        for _ in 0..<times {
            var o = p
            for y in 0..<size { for x in 0..<size { o[y * size + x] = p[x * size + size - 1 - y] } }
            p = o
        }
        return p
    }

    func planes(_ values: [Float], _ size: Int) -> [[Float]] {
        stride(from: 0, to: values.count, by: size * size).map { Array(values[$0..<$0 + size * size]) }
    }

    func testReadingWithRotationRRotatesTheChipRTimes() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: 40, height: 30)
        // Values that no symmetry of the square maps onto themselves, holes and nodata that the
        // fill and the mask must carry along.
        try writeScene(folder, grid: grid, bands: [
            Band.aspDSM: { x, y in x == 12 && y == 7 ? .nan : Float(100 + x + 10 * y) },
            Band.ortho1: { x, y in Float(x * y + 3 * x) },
            Band.ortho2: { x, _ in x == 13 ? .nan : Float(-x) },
            Band.nodataMask: { _, y in y == 9 ? 0 : 1 },
            Band.lidarDSM: { x, y in x == 14 && y == 8 ? .nan : Float(x - 2 * y) },
        ])
        let scene = try Scene(folder: folder.path, bands: [Band.aspDSM, Band.ortho1, Band.ortho2], target: Band.lidarDSM)
        let size = 8, reader = ChipReader(scenes: [scene], chipSize: size)
        func read(_ chip: ChipPlacement) throws -> [[Float]] {
            var inputs = [Float](repeating: -1, count: 3 * size * size), target = [Float](repeating: -1, count: size * size)
            var mask = target
            try reader.read(chip, inputs: &inputs, target: &target, mask: &mask)
            return planes(inputs, size) + [target, mask]
        }
        var distinct = Set<[Float]>()
        for (flipH, flipV, swap) in [(false, false, false), (true, false, true), (false, true, false), (true, true, true)] {
            let plain = try read(ChipPlacement(scene: 0, x: 10, y: 5, flipHorizontal: flipH, flipVertical: flipV, swapOrthos: swap))
            for r in 0..<4 {
                let turned = try read(ChipPlacement(scene: 0, x: 10, y: 5, flipHorizontal: flipH, flipVertical: flipV, swapOrthos: swap,
                                                    rotation: r))
                for (k, plane) in plain.enumerated() {
                    XCTAssertEqual(turned[k], rot90(plane, size, times: r), "flips \(flipH) \(flipV), \(r) turns, plane \(k)")
                }
                XCTAssertTrue(turned[4].contains(0) && turned[4].contains(1), "the mask has both kinds of pixel")
                distinct.insert(turned[0])
            }
        }
        XCTAssertEqual(distinct.count, 8, "four flip pairs times four turns are the square's 8 symmetries")
        // Counterclockwise, as numpy's rot90: one turn brings the window's top-right pixel to the top left.
        let once = try read(ChipPlacement(scene: 0, x: 10, y: 5, rotation: 1))
        XCTAssertEqual(once[0][0], Float(100 + 17 + 10 * 5))
        XCTAssertEqual(try read(ChipPlacement(scene: 0, x: 10, y: 5, rotation: -1)), try read(ChipPlacement(scene: 0, x: 10, y: 5, rotation: 3)))
    }

    /// The symmetry a placement applies, as the image of a 3 × 3 pattern with no symmetry of its own.
    func symmetry(_ chip: ChipPlacement) -> [Float] {
        var p: [Float] = (0..<9).map(Float.init), f = p
        for y in 0..<3 { for x in 0..<3 { f[y * 3 + x] = p[(chip.flipVertical ? 2 - y : y) * 3 + (chip.flipHorizontal ? 2 - x : x)] } }
        p = rot90(f, 3, times: chip.rotation)
        return p
    }

    func testRotationsAreDrawnEvenlyAndOnlyWhenAsked() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let map = try gradientSceneMap(folder, width: 160, height: 96)
        let off = try ChipSampler(maps: [map], region: .train, chipSize: 32, seed: 7)
        let on = try ChipSampler(maps: [map], region: .train, chipSize: 32, seed: 7, rotate90: true)
        var counts: [[Float]: Int] = [:]
        var turns = [0, 0, 0, 0]
        for step in 0..<200 {
            for index in 0..<8 {
                let before = off.chip(step: step, index: index), chip = on.chip(step: step, index: index)
                XCTAssertEqual(before.rotation, 0)
                var unturned = chip
                unturned.rotation = 0
                XCTAssertEqual(unturned, before, "rotate90 changes no earlier draw: position, flips and swap are as without it")
                XCTAssertEqual(chip, on.chip(step: step, index: index))
                turns[chip.rotation] += 1
                counts[symmetry(chip), default: 0] += 1
            }
        }
        // 1600 draws: 200 per symmetry and 400 per turn expected, standard deviations 13 and 17.
        XCTAssertEqual(counts.count, 8)
        XCTAssertTrue(counts.values.allSatisfy { (150...250).contains($0) }, "\(counts.values.sorted())")
        XCTAssertTrue(turns.allSatisfy { (330...470).contains($0) }, "\(turns)")
        let validation = try ChipSampler(maps: [map], region: .validation, chipSize: 32, seed: 7, rotate90: true)
        XCTAssertTrue((0..<50).allSatisfy { validation.chip(step: 0, index: $0).rotation == 0 }, "validation chips never turn")
    }
}
