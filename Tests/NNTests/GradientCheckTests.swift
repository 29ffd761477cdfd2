import Primitives
import XCTest
import NN

/// Finite-difference checks of every layer's backward. The loss is L = Σ r·f(x) with fixed random
/// r, evaluated in Double; central differences (step h) must match the analytic gradient within
/// `tol` of the largest analytic magnitude. A wrong index or a missing term gives errors of O(1).
final class GradientCheckTests: XCTestCase {
    var rng = SplitMix64(seed: 42)

    func random(_ shape: [Int], scale: Float = 1) -> Tensor {
        let t = Tensor(shape)
        for i in 0..<t.count { t[i] = scale * rng.normal() }
        return t
    }

    /// Checks d L/d input and d L/d every parameter of `layer` at `x`.
    func check(_ layer: any Layer, _ x: Tensor, input: Bool = true, h: Float = 1e-2, tol: Double = 2e-3,
               file: StaticString = #filePath, line: UInt = #line) {
        let x0 = Tensor(x.shape)
        x0.copy(from: x)
        let probe = Tensor(x.shape)
        func forward() -> Tensor {
            probe.copy(from: x0)   // layers such as ReLU work in place
            return layer.forward(probe, training: true)
        }
        let y = forward()
        let r = random(y.shape)
        func loss() -> Double {
            let y = forward()
            var s = 0.0
            for i in 0..<y.count { s += Double(r[i]) * Double(y[i]) }
            return s
        }
        for p in layer.parameterList { p.grad.zero() }
        _ = forward()
        let dy = Tensor(r.shape)
        dy.copy(from: r)
        let dx = layer.backward(dy).array

        func compare(_ name: String, _ values: Tensor, _ analytic: [Float]) {
            let scale = max(analytic.map { abs(Double($0)) }.max() ?? 0, 1e-3)
            let stride = max(1, values.count / 48)
            var worst = 0.0
            for i in Swift.stride(from: 0, to: values.count, by: stride) {
                let v = values[i]
                values[i] = v + h
                let lp = loss()
                values[i] = v - h
                let lm = loss()
                values[i] = v
                let numeric = (lp - lm) / Double(2 * h)
                worst = max(worst, abs(numeric - Double(analytic[i])) / scale)
            }
            XCTAssertLessThan(worst, tol, "\(type(of: layer)) \(name): relative error \(worst)", file: file, line: line)
        }
        for (k, p) in layer.parameterList.enumerated() { compare("parameter \(k) \(p.shape)", p.value, p.grad.array) }
        if input { compare("input \(x.shape)", x0, dx) }
    }

    /// Convolutions by both algorithms: the definition and the route the shape takes.
    func checkConv(_ cin: Int, _ cout: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true,
                   weightScale: Float, input shape: [Int], file: StaticString = #filePath, line: UInt = #line) {
        for algorithm in ConvAlgorithm.allCases {
            let conv = Conv2d(cin, cout, kernel: kernel, stride: stride, padding: padding, bias: bias,
                              algorithm: algorithm, workspace: Workspace())
            for i in 0..<conv.weight.count { conv.weight.value[i] = weightScale * rng.normal() }
            check(conv, random(shape), file: file, line: line)
        }
    }

    func testConv3x3Padded() {
        checkConv(3, 4, kernel: 3, padding: 1, weightScale: 0.3, input: [3, 3, 7, 5])
    }

    func testConvStem7x7Stride2NoBias() {
        checkConv(2, 3, kernel: 7, stride: 2, padding: 3, bias: false, weightScale: 0.1, input: [3, 2, 9, 11])
    }

    func testConvPointwiseStride2() {
        checkConv(4, 3, kernel: 1, stride: 2, bias: false, weightScale: 1, input: [3, 4, 7, 7])
    }

    func testConvPointwise() {
        checkConv(4, 2, kernel: 1, weightScale: 1, input: [3, 4, 3, 5])
    }

    func testConvTranspose2x2() {
        let up = ConvTranspose2d(3, 2, workspace: Workspace())
        for i in 0..<up.weight.count { up.weight.value[i] = rng.normal() }
        for i in 0..<2 { up.bias!.value[i] = rng.normal() }
        check(up, random([3, 3, 5, 3]))
    }

    func testBatchNormTraining() {
        let bn = BatchNorm2d(4)
        for c in 0..<4 { bn.weight.value[c] = 1 + 0.5 * rng.normal(); bn.bias.value[c] = rng.normal() }
        check(bn, random([3, 4, 5, 7], scale: 2))
    }

    /// With a reducer that sums over "ranks" that all hold the same data, statistics and
    /// gradients must equal the unsynchronized ones: the hook is wired into both passes.
    func testBatchNormReducerIsUsedConsistently() {
        let bn = BatchNorm2d(3)
        var calls = 0
        bn.reducer = { buffer in
            calls += 1
            for i in buffer.indices { buffer[i] *= 2 }   // two identical ranks
        }
        check(bn, random([2, 3, 4, 5]))
        XCTAssertGreaterThan(calls, 0)
    }

    /// ResNet-50's block: the downsampling shortcut at stride 2 (the first block of stages 2–4), at
    /// stride 1 (layer1.0, 64 → 256 channels), and the identity shortcut.
    func testBottleneckDownsampleStride2() { checkBottleneck(8, width: 4, stride: 2, input: [2, 8, 7, 6]) }
    func testBottleneckDownsampleStride1() { checkBottleneck(4, width: 4, stride: 1, input: [2, 4, 5, 6]) }
    func testBottleneckIdentityShortcut() { checkBottleneck(16, width: 4, stride: 1, input: [2, 16, 5, 4]) }

    /// As `check`, except that with three ReLUs behind BatchNorms some value always lies within h of
    /// a kink: a sample whose one-sided differences disagree straddles one and is skipped (as in
    /// ModelGradientTests), but more than half must count.
    func checkBottleneck(_ cin: Int, width: Int, stride: Int, input shape: [Int], h: Float = 1e-3, tol: Double = 2e-3,
                         file: StaticString = #filePath, line: UInt = #line) {
        let block = BlockLayer(Bottleneck(cin, width: width, stride: stride, workspace: Workspace()))
        XCTAssertEqual(block.parameterList.count, cin == 4 * width && stride == 1 ? 9 : 12, file: file, line: line)
        for p in block.parameterList {
            let fanIn = p.shape.dropFirst().reduce(1, *)
            for i in 0..<p.count {
                p.value[i] = p.shape.count == 4 ? rng.normal() / Float(fanIn).squareRoot() : 1 + 0.3 * rng.normal()
            }
        }
        let x = random(shape), probe = Tensor(shape)
        func forward() -> Tensor {
            probe.copy(from: x)
            return block.forward(probe, training: true)
        }
        let r = random(forward().shape)
        func loss() -> Double {
            let y = forward()
            var s = 0.0
            for i in 0..<y.count { s += Double(r[i]) * Double(y[i]) }
            return s
        }
        for p in block.parameterList { p.grad.zero() }
        _ = forward()
        let dy = Tensor(r.shape)
        dy.copy(from: r)
        let dx = block.backward(dy).array
        var used = 0, tried = 0
        func compare(_ name: String, _ values: Tensor, _ analytic: [Float]) {
            let scale = max(analytic.map { abs(Double($0)) }.max() ?? 0, 1e-3)
            var worst = 0.0
            for i in Swift.stride(from: 0, to: values.count, by: max(1, values.count / 48)) {
                let v = values[i]
                let l0 = loss()
                values[i] = v + h
                let lp = loss()
                values[i] = v - h
                let lm = loss()
                values[i] = v
                tried += 1
                if abs((lp - l0) - (l0 - lm)) / Double(h) > 0.5 * tol * scale { continue }
                used += 1
                worst = max(worst, abs((lp - lm) / Double(2 * h) - Double(analytic[i])) / scale)
            }
            XCTAssertLessThan(worst, tol, "Bottleneck \(name): relative error \(worst)", file: file, line: line)
        }
        for (k, p) in block.parameterList.enumerated() { compare("parameter \(k) \(p.shape)", p.value, p.grad.array) }
        compare("input \(shape)", x, dx)
        XCTAssertGreaterThan(used, tried / 2, "too many samples straddle kinks", file: file, line: line)
        // Backward reported each layer with parameters once: as many convolutions (one weight) as
        // BatchNorms (weight and bias).
        XCTAssertEqual(block.done.count, block.parameterList.count * 2 / 3, file: file, line: line)
        XCTAssertEqual(Set(block.done).count, block.done.count, file: file, line: line)
    }

    func testMaxPool2x2OddSize() {
        // Distinct values: finite differences must not cross a tie.
        let x = Tensor([3, 2, 7, 6])
        var values = (0..<x.count).map { Float($0) * 0.37 }
        values.shuffle(using: &rng)
        for i in 0..<x.count { x[i] = values[i] }
        check(MaxPool2d(kernel: 2, stride: 2), x)
    }

    func testMaxPool3x3Stride2Padded() {
        let x = Tensor([3, 2, 9, 7])
        var values = (0..<x.count).map { Float($0) * 0.29 - 20 }
        values.shuffle(using: &rng)
        for i in 0..<x.count { x[i] = values[i] }
        check(MaxPool2d(kernel: 3, stride: 2, padding: 1), x)
    }

    func testReLU() {
        // Keep inputs away from the kink at 0.
        let x = random([3, 2, 5, 3])
        for i in 0..<x.count where abs(x[i]) < 0.05 { x[i] = 0.5 }
        check(ReLU(), x)
    }

    func testUpsampleNearest() {
        check(Upsample(factor: 2), random([3, 2, 3, 5]))
    }

    /// Odd sizes and a single row: the clamped borders (first and last output of each axis read one
    /// input twice) are where a wrong neighbour would show.
    func testUpsampleBilinear() {
        check(BilinearUpsample(factor: 2), random([2, 3, 3, 5]))
        check(BilinearUpsample(factor: 2), random([1, 2, 1, 4]))
    }

    /// PyTorch's nn.Upsample(mode='bilinear', scale_factor=2) of [[1, 2, 3], [4, 5, 6]].
    func testUpsampleBilinearForwardValues() {
        let x = Tensor([1, 1, 2, 3], [1, 2, 3, 4, 5, 6])
        let expected: [Float] = [1.0, 1.25, 1.75, 2.25, 2.75, 3.0, 1.75, 2.0, 2.5, 3.0, 3.5, 3.75,
                                 3.25, 3.5, 4.0, 4.5, 5.0, 5.25, 4.0, 4.25, 4.75, 5.25, 5.75, 6.0]
        XCTAssertEqual(BilinearUpsample(factor: 2).forward(x, training: true).array, expected)
        XCTAssertEqual(BilinearUpsample(factor: 2).forward(x, training: false).array, expected)
    }

    /// Forward and backward give the same bits on one thread and on four.
    func testUpsampleBilinearBitsAtAnyThreadCount() {
        let x = random([2, 9, 7, 6]), dy = random([2, 9, 14, 12])
        let before = ComputeThreads.count
        defer { ComputeThreads.set(before) }
        func run(_ threads: Int) -> ([Float], [Float]) {
            ComputeThreads.set(threads)
            let up = BilinearUpsample(factor: 2)
            let y = up.forward(x, training: true).array
            return (y, up.backward(dy).array)
        }
        let one = run(1), four = run(4)
        XCTAssertEqual(one.0, four.0)
        XCTAssertEqual(one.1, four.1)
    }

    /// Inference pools without recording winners; its maxima (NaN included) are training's, in the
    /// vectorized columns of 3×3/2 (several groups of four at widths 40 and 31) and around them.
    func testMaxPoolInferenceEqualsTraining() {
        for (k, s, p, shape) in [(2, 2, 0, [2, 3, 9, 11]), (3, 2, 1, [2, 3, 9, 10]), (3, 2, 1, [1, 2, 16, 17]),
                                 (3, 2, 1, [2, 3, 7, 40]), (3, 2, 1, [1, 2, 6, 31])] {
            let x = random(shape)
            x[5] = .nan
            let pool = MaxPool2d(kernel: k, stride: s, padding: p)
            let train = pool.forward(x, training: true).array, infer = pool.forward(x, training: false).array
            XCTAssertEqual(train.count, infer.count)
            for (a, b) in zip(train, infer) {
                XCTAssertTrue(a == b || (a.isNaN && b.isNaN), "\(k)×\(k)/\(s) of \(shape): \(a) against \(b)")
            }
            XCTAssertTrue(infer.contains { $0.isNaN })
        }
    }

    func testMaxPoolForwardValues() {
        let x = Tensor([1, 1, 3, 3], [1, 5, 2, 4, 3, 9, 0, 7, 8])
        let y = MaxPool2d(kernel: 3, stride: 2, padding: 1).forward(x, training: true)
        XCTAssertEqual(y.array, [5, 9, 7, 9])
    }
}

/// A residual block as a `Layer`, recording the layers its backward reports done.
final class BlockLayer: Layer {
    let block: Bottleneck
    private(set) var done: [ObjectIdentifier] = []

    init(_ block: Bottleneck) { self.block = block }

    var parameterList: [Parameter] {
        block.state().compactMap { _, entry in if case .parameter(let p) = entry { return p } else { return nil } }
    }
    func collectState(prefix: String, into state: inout [(String, StateEntry)]) { block.collectState(prefix: prefix, into: &state) }
    func forward(_ x: Tensor, training: Bool) -> Tensor { block.forward(x, training: training) }
    func backward(_ dy: Tensor) -> Tensor {
        done.removeAll()
        return block.backward(dy) { [self] in done.append(ObjectIdentifier($0)) }
    }
}
