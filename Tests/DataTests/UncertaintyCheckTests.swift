import Data
import Foundation
import XCTest

/// `UncertaintyCheck`: Spearman's ρ of σ with |error| and the MAE by σ quintile, from rasters.
final class UncertaintyCheckTests: XCTestCase {
    func check(errors: [Float], sigmas: [Float]) throws -> UncertaintyCheck {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try testGrid(width: errors.count, height: 1)
        let paths = ["t", "p", "s"].map { folder.appendingPathComponent("\($0).tif").path }
        try RasterWriter.write([Float](repeating: 10, count: errors.count), grid: grid, nodata: -9999, to: paths[0])
        try RasterWriter.write(errors.map { 10 + $0 }, grid: grid, nodata: -9999, to: paths[1])
        try RasterWriter.write(sigmas, grid: grid, nodata: -9999, to: paths[2])
        return try UncertaintyCheck.run(prediction: paths[1], truth: paths[0], sigma: paths[2])
    }

    /// σ that orders the errors exactly gives ρ = 1 whatever its scale, the reverse −1; ties take
    /// mean ranks (ρ computed by hand: ranks 1.5, 1.5, 3, 4, 5 against 1…5 → 0.9747); NaN σ pixels
    /// are left out; quintiles hold a fifth each, lowest σ first.
    func testRanksAndQuintiles() throws {
        let errors: [Float] = (1...10).map { Float($0) * 0.25 }
        let same = try check(errors: errors, sigmas: errors.map { $0 * $0 * 7 })
        XCTAssertEqual(same.spearman, 1, accuracy: 1e-12)
        XCTAssertEqual(same.quintiles.map(\.count), [2, 2, 2, 2, 2])
        XCTAssertEqual(same.quintiles[0].mae, (0.25 + 0.5) / 2, accuracy: 1e-6)
        XCTAssertEqual(same.quintiles[4].mae, (2.25 + 2.5) / 2, accuracy: 1e-6)
        XCTAssertEqual(try check(errors: errors, sigmas: errors.map { 3 - $0 }).spearman, -1, accuracy: 1e-12)
        let tied = try check(errors: [1, 2, 3, 4, 5, 6], sigmas: [0.1, 0.1, 0.2, 0.3, 0.4, .nan])
        XCTAssertEqual(tied.count, 5)
        XCTAssertEqual(tied.spearman, 9.5 / (9.5 * 10).squareRoot(), accuracy: 1e-9)   // Σ dadb / √(Σda² Σdb²)
    }
}
