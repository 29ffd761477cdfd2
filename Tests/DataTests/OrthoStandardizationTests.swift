import Data
import Foundation
import Primitives
import XCTest

/// The ortho standardization a model stores (`OrthoStandardization`), as training chips
/// (`ChipReader`) and refined tiles (`Tiler`) get it from the one nodata fill.
final class OrthoStandardizationTests: XCTestCase {
    static let bands = [Band.aspDSM, Band.ortho1, Band.ortho2, Band.ndvi]
    /// ortho1: a ramp with a hole at (3, 2); ortho2: constant; ndvi and asp_dsm are no orthos.
    static let hole = (x: 3, y: 2)
    static func ortho1(_ x: Int, _ y: Int) -> Float { x == hole.x && y == hole.y ? .nan : Float(2 * x + 7 * y) + 0.25 }
    static func ndvi(_ x: Int, _ y: Int) -> Float { Float(x - y) / 10 }
    static func asp(_ x: Int, _ y: Int) -> Float { Float(300 + x + y) }

    func makeScene(_ folder: URL, width: Int = 24, height: Int = 16) throws -> Scene {
        try writeScene(folder, grid: try testGrid(width: width, height: height), bands: [
            Band.aspDSM: Self.asp, Band.ortho1: Self.ortho1, Band.ortho2: { _, _ in 42 }, Band.ndvi: Self.ndvi,
            Band.lidarDSM: { x, y in Self.asp(x, y) + 1 },
        ])
        return try Scene(folder: folder.path, bands: Self.bands, target: Band.lidarDSM)
    }

    /// The chip at (x0, y0) of `size` read with `mode`: [band][pixel].
    func chip(_ scene: Scene, _ mode: OrthoStandardization, x0: Int, y0: Int, size: Int = 8) throws -> [[Float]] {
        let reader = ChipReader(scenes: [scene], chipSize: size, orthoStandardization: mode)
        let plane = size * size
        var inputs = [Float](repeating: .nan, count: Self.bands.count * plane)
        var target = [Float](repeating: 0, count: plane), mask = target
        try reader.read(ChipPlacement(scene: 0, x: x0, y: y0), inputs: &inputs, target: &target, mask: &mask)
        return (0..<Self.bands.count).map { Array(inputs[$0 * plane..<($0 + 1) * plane]) }
    }

    /// ortho1's values in the chip, NaN at the hole, in Double.
    func ortho1Values(x0: Int, y0: Int, size: Int = 8) -> [Double] {
        (0..<size * size).map { Double(Self.ortho1(x0 + $0 % size, y0 + $0 / size)) }
    }

    func testTileModeStandardizesEachOrthoBandOverItsValidPixels() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let scene = try makeScene(folder)
        let c = try chip(scene, .tile, x0: 0, y0: 0)
        let raw = ortho1Values(x0: 0, y0: 0), valid = raw.filter { !$0.isNaN }
        XCTAssertEqual(valid.count, 63, "the hole is not a valid pixel")
        let mean = valid.reduce(0, +) / 63
        let std = (valid.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 63).squareRoot()
        let holeIndex = Self.hole.y * 8 + Self.hole.x
        var sum = 0.0, squares = 0.0
        for i in 0..<64 where i != holeIndex {
            XCTAssertEqual(Double(c[1][i]), (raw[i] - mean) / std, accuracy: 1e-6)
            sum += Double(c[1][i])
            squares += Double(c[1][i]) * Double(c[1][i])
        }
        XCTAssertEqual(sum / 63, 0, accuracy: 1e-6)
        XCTAssertEqual((squares / 63).squareRoot(), 1, accuracy: 1e-6, "population std over the valid pixels")
        XCTAssertEqual(c[1][holeIndex], 0, "nodata is 0 after standardization")
        XCTAssertEqual(c[2], [Float](repeating: 0, count: 64), "a constant band becomes 0, not NaN")
        let plain = try chip(scene, .none, x0: 0, y0: 0)
        XCTAssertEqual(c[0], plain[0], "asp_dsm is no ortho")
        XCTAssertEqual(c[3], plain[3], "ndvi is no ortho")
        XCTAssertEqual(plain[2], [Float](repeating: 42, count: 64), "none leaves the orthos as they are")
        XCTAssertEqual(plain[1][holeIndex], 0)
        XCTAssertEqual(plain[1][0], Self.ortho1(0, 0))
    }

    func testFixedModeIsResDepthsNormalization() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let scene = try makeScene(folder)
        let c = try chip(scene, .fixed(mean: 30, std: 8), x0: 0, y0: 0)
        let holeIndex = Self.hole.y * 8 + Self.hole.x
        for i in 0..<64 {
            let v = Self.ortho1(i % 8, i / 8)
            XCTAssertEqual(c[1][i], i == holeIndex ? 0 : (v - 30) / 8)
            XCTAssertEqual(c[2][i], (42 - 30) / 8, "one mean and std for every ortho band, constant or not")
        }
        // mean null: the chip is centred on the mean of all its ortho pixels together, then / std.
        let centred = try chip(scene, .fixed(mean: nil, std: 4), x0: 8, y0: 8)
        let o1 = ortho1Values(x0: 8, y0: 8)
        XCTAssertFalse(o1.contains { $0.isNaN }, "this chip has no hole")
        let joint = (o1.reduce(0, +) + 42 * 64) / 128
        for i in 0..<64 {
            XCTAssertEqual(Double(centred[1][i]), (o1[i] - joint) / 4, accuracy: 1e-5)
            XCTAssertEqual(Double(centred[2][i]), (42 - joint) / 4, accuracy: 1e-5)
        }
        XCTAssertEqual(centred[3], try chip(scene, .none, x0: 8, y0: 8)[3])
    }

    /// Refined tiles get exactly the training chips' inputs: the same fill, the same standardization.
    func testTilesAreStandardizedAsTrainingChips() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let scene = try makeScene(folder)
        for mode in [OrthoStandardization.tile, .fixed(mean: nil, std: 3), .fixed(mean: 10, std: 2)] {
            var tiler = Tiler(chipSize: 8, stride: 8, batchSize: 4)
            tiler.orthoStandardization = mode
            var tiles: [[Float]] = []
            let out = folder.appendingPathComponent("refined.tif").path
            try? FileManager.default.removeItem(atPath: out)
            try tiler.run(scene: scene, output: out) { inputs, count, outputs in
                let size = Self.bands.count * 64
                for t in 0..<count { tiles.append(Array(UnsafeBufferPointer(start: inputs + t * size, count: size))) }
                for i in 0..<count * 64 { outputs[i] = 0 }
            }
            XCTAssertEqual(tiles.count, 6)
            for (k, (y0, x0)) in [0, 8].flatMap({ y in [0, 8, 16].map { (y, $0) } }).enumerated() {
                XCTAssertEqual(tiles[k], try chip(scene, mode, x0: x0, y0: y0).flatMap { $0 }, "\(mode) tile at \(x0), \(y0)")
            }
        }
    }
}
