import NN
import Primitives
import XCTest

/// Convolutions in bf16-mixed against their definition in Double. Each operand is rounded to 8
/// significant bits (relative error at most 2⁻⁹), so each product is off by at most about 2⁻⁸ of
/// itself and a sum by at most 2⁻⁸·Σ|terms|; F(2×2)'s transforms grow Σ|terms| a little over |y|.
/// The bound is 2⁻⁸·4 ≈ 1.6 % of the output's largest magnitude (measured: 0.2–0.5 %), and the
/// error must also exceed fp32's (1e-5): else the multiplications were not bf16 at all.
final class BF16ConvolutionTests: XCTestCase {
    func testEveryRouteWithinTheRoundingBound() throws {
        try XCTSkipUnless(Precision.bf16Mixed.isAvailable, "this CPU has no AVX512_BF16")
        // Winograd F(2×2) (F(4×4) is off in bf16), im2col bands and chunks, strided, pointwise.
        for (cin, cout, k, s, p, shape) in [(16, 8, 3, 1, 1, [2, 16, 24, 20]), (32, 16, 3, 1, 1, [1, 32, 9, 10]),
                                            (5, 7, 3, 1, 1, [3, 5, 9, 6]), (3, 6, 3, 2, 1, [2, 3, 33, 34]),
                                            (8, 12, 1, 1, 0, [2, 8, 7, 9]), (2, 4, 7, 2, 3, [2, 2, 19, 21])] {
            let passes = ConvolutionTests.passes(cin: cin, cout: cout, kernel: k, stride: s, padding: p, shape: shape,
                                                 precision: .bf16Mixed)
            // The bias gradient is a plain fp32 sum in both.
            for (what, actual, expected) in passes where what != "bias gradient" {
                let scale = Double(expected.map(abs).max()!)
                let worst = zip(actual, expected).map { abs(Double($0) - Double($1)) }.max()!
                XCTAssertLessThan(worst, 4 * 0x1p-8 * scale, "\(what) of \(shape): worst error \(worst), scale \(scale)")
                XCTAssertGreaterThan(worst, 1e-5 * scale, "\(what) of \(shape): as exact as fp32, so not bf16")
            }
        }
    }
}
