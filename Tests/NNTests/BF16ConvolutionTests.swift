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
        // Winograd F(2×2) and F(4×4), im2col bands and chunks, strided, pointwise.
        for (cin, cout, k, s, p, shape) in [(16, 8, 3, 1, 1, [2, 16, 24, 20]), (32, 16, 3, 1, 1, [1, 32, 9, 10]),
                                            (5, 7, 3, 1, 1, [3, 5, 9, 6]), (3, 6, 3, 2, 1, [2, 3, 33, 34]),
                                            (8, 12, 1, 1, 0, [2, 8, 7, 9]), (2, 4, 7, 2, 3, [2, 2, 19, 21])] {
            var rng = SplitMix64(seed: 11)
            let fast = Conv2d(cin, cout, kernel: k, stride: s, padding: p, precision: .bf16Mixed, workspace: Workspace())
            let exact = Conv2d(cin, cout, kernel: k, stride: s, padding: p, algorithm: .reference, workspace: Workspace())
            for i in 0..<fast.weight.count { fast.weight.value[i] = rng.normal() }
            exact.weight.value.copy(from: fast.weight.value)
            for i in 0..<cout { fast.bias!.value[i] = rng.normal() }
            exact.bias!.value.copy(from: fast.bias!.value)
            let x = Tensor(shape)
            for i in 0..<x.count { x[i] = rng.normal() }
            let y = exact.forward(x, training: true)
            let dy = Tensor(y.shape)
            for i in 0..<dy.count { dy[i] = rng.normal() }
            let dx = exact.backward(dy)
            let inference = fast.forward(x, training: false).array, out = fast.forward(x, training: true).array
            let din = fast.backward(dy).array
            func compare(_ actual: [Float], _ expected: Tensor, _ what: String) {
                let expected = expected.array
                let scale = Double(expected.map(abs).max()!)
                let worst = zip(actual, expected).map { abs(Double($0) - Double($1)) }.max()!
                XCTAssertLessThan(worst, 4 * 0x1p-8 * scale, "\(what) of \(shape): worst error \(worst), scale \(scale)")
                XCTAssertGreaterThan(worst, 1e-5 * scale, "\(what) of \(shape): as exact as fp32, so not bf16")
            }
            compare(inference, y, "inference output")
            compare(out, y, "output")
            compare(din, dx, "input gradient")
            compare(fast.weight.grad.array, exact.weight.grad, "weight gradient")
        }
    }
}
