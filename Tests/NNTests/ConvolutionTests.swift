import NN
import Primitives
import XCTest

/// Conv2d's fast paths against its `.reference` algorithm (the definition, summed in Double):
/// forward, weight, bias and input gradients. Sizes are chosen so that the 3×3 'same' path meets odd heights and widths
/// and splits the batch into several passes (which accumulate the weight gradient across passes),
/// and also sizes whose tiles cover the image exactly (written straight into the output).
final class ConvolutionTests: XCTestCase {
    /// Winograd (16 and more input channels): F(2×2, 3×3), and from 16×16 up F(4×4, 3×3) in
    /// inference and for the weight gradient; exact and padded tiles, one and several passes, and
    /// passes over bands of an image's tile rows (the 96×96 images, in both variants, forward and
    /// backward: a band's input gradient adds its top rows to the band before it).
    func testSame3x3MatchesDefinition() {
        check(cin: 16, cout: 7, kernel: 3, stride: 1, padding: 1, shape: [3, 16, 9, 6])
        check(cin: 17, cout: 6, kernel: 3, stride: 1, padding: 1, shape: [2, 17, 16, 8])
        check(cin: 16, cout: 5, kernel: 3, stride: 1, padding: 1, shape: [2, 16, 66, 67])
        check(cin: 16, cout: 5, kernel: 3, stride: 1, padding: 1, shape: [2, 16, 16, 32])
        check(cin: 18, cout: 5, kernel: 3, stride: 1, padding: 1, shape: [3, 18, 19, 17])
        check(cin: 16, cout: 5, kernel: 3, stride: 1, padding: 1, shape: [2, 16, 96, 90], bias: false)
        check(cin: 16, cout: 5, kernel: 3, stride: 1, padding: 1, shape: [1, 16, 96, 96])
    }

    /// Fewer input channels go through im2col; up to four output channels are computed directly
    /// (widths that are and are not multiples of eight).
    func testThin3x3MatchesDefinition() {
        check(cin: 5, cout: 7, kernel: 3, stride: 1, padding: 1, shape: [3, 5, 9, 6])
        check(cin: 3, cout: 6, kernel: 3, stride: 1, padding: 1, shape: [2, 3, 66, 67])
        check(cin: 16, cout: 1, kernel: 3, stride: 1, padding: 1, shape: [2, 16, 4, 4], bias: false)
        check(cin: 20, cout: 1, kernel: 3, stride: 1, padding: 1, shape: [2, 20, 19, 35])
        check(cin: 3, cout: 4, kernel: 3, stride: 1, padding: 1, shape: [3, 3, 16, 32])
    }

    /// Small outputs take several images per GEMM (odd counts leave a short last chunk); larger
    /// ones one image at a time, in bands of output rows when the columns would not fit the budget
    /// (the 7×7 stem and a wide thin layer, each with a short last band).
    func testStridedAndPointwiseMatchDefinition() {
        check(cin: 3, cout: 4, kernel: 3, stride: 2, padding: 1, shape: [5, 3, 9, 8])
        check(cin: 4, cout: 3, kernel: 1, stride: 2, padding: 0, shape: [3, 4, 7, 7], bias: false)
        check(cin: 2, cout: 3, kernel: 1, stride: 1, padding: 0, shape: [3, 2, 5, 6])
        check(cin: 2, cout: 2, kernel: 7, stride: 2, padding: 3, shape: [67, 2, 9, 11], bias: false)
        check(cin: 2, cout: 3, kernel: 3, stride: 2, padding: 1, shape: [2, 2, 70, 66])
        check(cin: 6, cout: 5, kernel: 7, stride: 2, padding: 3, shape: [2, 6, 101, 190], bias: false)
        check(cin: 5, cout: 6, kernel: 3, stride: 1, padding: 1, shape: [1, 5, 47, 600])
    }

    /// ConvTranspose2d 2×2/2 forward against out[o, 2i + ky, 2j + kx] = b[o] + Σ_c x[c, i, j]·W[c, o, ky, kx].
    func testTransposedMatchesDefinition() {
        for shape in [[5, 3, 4, 7], [3, 2, 9, 6], [2, 3, 33, 34]] {
            var rng = SplitMix64(seed: 9)
            let (n, cin, h, w, cout) = (shape[0], shape[1], shape[2], shape[3], 3)
            let up = ConvTranspose2d(cin, cout, workspace: Workspace())
            for i in 0..<up.weight.count { up.weight.value[i] = rng.normal() }
            for i in 0..<cout { up.bias!.value[i] = rng.normal() }
            let x = Tensor(shape)
            for i in 0..<x.count { x[i] = rng.normal() }
            var expected = [Double](repeating: 0, count: n * cout * 4 * h * w)
            for b in 0..<n {
                for o in 0..<cout {
                    for oy in 0..<(2 * h) {
                        for ox in 0..<(2 * w) {
                            var sum = Double(up.bias!.value[o])
                            for c in 0..<cin {
                                sum += Double(x[((b * cin + c) * h + oy / 2) * w + ox / 2])
                                    * Double(up.weight.value[((c * cout + o) * 2 + oy % 2) * 2 + ox % 2])
                            }
                            expected[((b * cout + o) * 2 * h + oy) * 2 * w + ox] = sum
                        }
                    }
                }
            }
            for training in [false, true] {
                let y = up.forward(x, training: training).array
                let worst = zip(y, expected).map { abs(Double($0) - $1) }.max()!
                XCTAssertLessThan(worst, 1e-5 * expected.map(abs).max()!, "\(shape), training \(training)")
            }
        }
    }

    /// Every pass of the automatic route against `.reference` (the definition, summed in Double) on
    /// the same weights, input and output gradient.
    func check(cin: Int, cout: Int, kernel k: Int, stride s: Int, padding p: Int, shape: [Int], bias: Bool = true,
               file: StaticString = #filePath, line: UInt = #line) {
        for (what, actual, expected) in Self.passes(cin: cin, cout: cout, kernel: k, stride: s, padding: p, shape: shape, bias: bias) {
            let scale = Double(expected.map(abs).max()!)
            let worst = zip(actual, expected).map { abs(Double($0) - Double($1)) }.max()!
            XCTAssertLessThan(worst, 1e-5 * scale, "\(what) of \(shape): worst error \(worst), scale \(scale)", file: file, line: line)
        }
    }

    /// (pass, automatic route's result in `precision`, the reference's) for inference, training
    /// forward, input, weight and bias gradients of one random convolution.
    static func passes(cin: Int, cout: Int, kernel k: Int, stride s: Int, padding p: Int, shape: [Int], bias: Bool = true,
                       precision: Precision = .fp32) -> [(String, [Float], [Float])] {
        var rng = SplitMix64(seed: 5)
        let fast = Conv2d(cin, cout, kernel: k, stride: s, padding: p, bias: bias, algorithm: .automatic, precision: precision,
                          workspace: Workspace())
        let reference = Conv2d(cin, cout, kernel: k, stride: s, padding: p, bias: bias, algorithm: .reference, workspace: Workspace())
        for i in 0..<fast.weight.count { fast.weight.value[i] = rng.normal() }
        reference.weight.value.copy(from: fast.weight.value)
        if let b = fast.bias {
            for i in 0..<b.count { b.value[i] = rng.normal() }
            reference.bias!.value.copy(from: b.value)
        }
        let x = Tensor(shape)
        for i in 0..<x.count { x[i] = rng.normal() }
        let forward = reference.forward(x, training: true)
        let y = forward.array
        let dy = Tensor(forward.shape)
        for i in 0..<dy.count { dy[i] = rng.normal() }
        let dx = reference.backward(dy).array
        // Inference may take another algorithm (F(4×4, 3×3) from 16×16 up).
        let inference = fast.forward(x, training: false).array
        let out = fast.forward(x, training: true).array
        let din = fast.backward(dy).array
        var all = [("inference output", inference, y), ("output", out, y), ("input gradient", din, dx),
                   ("weight gradient", fast.weight.grad.array, reference.weight.grad.array)]
        if let b = fast.bias { all.append(("bias gradient", b.grad.array, reference.bias!.grad.array)) }
        return all
    }
}
