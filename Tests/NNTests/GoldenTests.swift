import Foundation
import NN
import XCTest

/// The Swift models against PyTorch: forward (training and eval BatchNorm), the masked-L1
/// gradients and two Adam steps, for the configurations of Fixtures/make_fixtures.py, whose
/// outputs PyTorch computed in float64 with the same formula weights (`FormulaWeights`).
///
/// A result must lie within 1e-4 of the reference tensor's largest magnitude, or within the
/// fixture's `noise_factor` times the deviation PyTorch's own float32 runs showed, whichever is
/// larger: with training-mode BatchNorm, ReLU and max-pool kinks, the ResNet U-Nets' gradients are
/// so badly conditioned that float32 rounding alone moves some by percents (see make_fixtures.py,
/// `model_fixture`), while the UNets' stay near 1e-6 and get the 1e-4 bound.
final class GoldenTests: XCTestCase {
    static let tolerance: Float = 1e-4

    func testUNetWithoutBatchNorm() throws { try check("unet_a") }
    func testUNetWithBatchNormAndOuterSkip() throws { try check("unet_b") }
    func testUNetWithBilinearUpsampling() throws { try check("unet_c") }
    func testResNet18UNet() throws { try check("resnet18") }
    func testResNet34UNet() throws { try check("resnet34", writeForPyTorch: false) }
    func testResNet50UNet() throws { try check("resnet50") }

    /// The reference convolutions (the definition, no kernel and no BLAS) match PyTorch too, so a
    /// user who forces them while debugging gets the same model.
    func testReferenceConvolutions() throws {
        ConvAlgorithm.forNewLayers = .reference
        defer { ConvAlgorithm.forNewLayers = .automatic }
        try check("unet_b", writeForPyTorch: false)
        try check("resnet18", writeForPyTorch: false)
    }

    /// Checkpoints written by PyTorch (`safetensors.torch.save_file`) load, and hold exactly the
    /// formula weights: the Swift generator and state order agree with PyTorch's bit for bit.
    func testPyTorchWrittenCheckpointsLoad() throws {
        for name in ["unet_a", "unet_b"] {
            let path = Self.fixture("\(name)_weights")
            let config = try Checkpoint.readConfig(path)
            let loaded = try makeNetwork(config)
            try Checkpoint.load(path, into: loaded)
            let formula = try makeNetwork(config)
            FormulaWeights.apply(to: formula)
            var compared = 0
            for ((name, a), (_, b)) in zip(loaded.state(), formula.state()) {
                switch (a, b) {
                case (.parameter(let p), .parameter(let q)):
                    XCTAssertEqual(p.value.array, q.value.array, name)
                case (.buffer(let s), .buffer(let t)):
                    XCTAssertEqual(s.array, t.array, name)
                case (.counter(let c), .counter):
                    XCTAssertEqual(c.value, 0, name)
                default:
                    XCTFail("\(name): state kinds differ")
                }
                compared += 1
            }
            XCTAssertEqual(compared, try SafeTensors.header(of: path).tensors.count)
        }
    }

    static func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("\(name).safetensors").path
    }

    func check(_ name: String, writeForPyTorch: Bool = true) throws {
        let f = try SafeTensors(contentsOf: Self.fixture(name))
        let config = try JSONDecoder().decode(ModelConfig.self, from: Data(f.metadata["deepdem"]!.utf8))
        let golden = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(f.metadata["golden"]!.utf8)) as? [String: Any])
        let noiseFactor = Float(golden["noise_factor"] as! Double)
        let net = try makeNetwork(config)
        let names = { (prefix: String) in Set(f.tensors.map(\.name).filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }) }
        XCTAssertEqual(Set(net.parameters.names), names("grad_index."), "\(name): parameter names")
        XCTAssertEqual(Set(net.state().compactMap { n, e in if case .buffer = e { return n } else { return nil } }),
                       names("running_index."), "\(name): buffer names")
        FormulaWeights.apply(to: net)
        let model = ResidualModel(network: net, gsf: Float(config.gsf))
        let x = try f.tensor("input"), target = try f.tensor("target"), mask = try f.tensor("mask")
        let initial = (0..<x.n).flatMap { b in Array(UnsafeBufferPointer(start: x.data + b * x.c * x.h * x.w, count: x.h * x.w)) }

        let xBefore = x.array
        let eval = model.forward(x, training: false).array
        XCTAssertEqual(x.array, xBefore, "forward modified its input")
        try compareRefined(eval, f, "refined_eval", initial: initial)

        net.parameters.zeroGrad()
        let train = model.forward(x, training: true).array
        try compareRefined(train, f, "refined_train", initial: initial)
        let (sum, count) = model.loss(target: target, mask: mask)
        let loss = try f.floats("loss")[0]
        XCTAssertEqual(Float(sum / count), loss, accuracy: Self.tolerance * loss, "\(name): loss")
        XCTAssertEqual(count, Double(mask.buffer.reduce(0, +)))
        model.backward(target: target, mask: mask, normalizer: count)

        let params = Dictionary(uniqueKeysWithValues: zip(net.parameters.names, net.parameters.parameters))
        for (p, param) in params {
            let g = param.grad
            let index = try f.int64s("grad_index.\(p)").map(Int.init)
            let expected = try f.floats("grad_sample.\(p)"), absmax = try f.floats("grad_absmax.\(p)")[0]
            let bound = max(Self.tolerance, noiseFactor * (try f.floats("grad_noise.\(p)")[0])) * absmax
            compare(index.map { g[$0] }, expected, bound: bound, "\(name): gradient of \(p)")
            XCTAssertEqual(g.buffer.reduce(0) { max($0, abs($1)) }, absmax, accuracy: bound, "\(name): max |gradient| of \(p)")
        }

        let adam = Adam(net.parameters, lr: golden["lr"] as! Double, weightDecay: golden["weight_decay"] as! Double)
        adam.step()
        net.parameters.zeroGrad()
        _ = model.forward(x, training: true)
        let (sum2, count2) = model.loss(target: target, mask: mask)
        let loss2 = Float(golden["loss_after_step1"] as! Double), noise2 = Float(golden["loss_after_step1_noise"] as! Double)
        XCTAssertEqual(Float(sum2 / count2), loss2, accuracy: max(Self.tolerance * loss2, noiseFactor * noise2),
                       "\(name): loss after one step")
        model.backward(target: target, mask: mask, normalizer: count2)
        adam.step()

        for (p, param) in params {
            let index = try f.int64s("grad_index.\(p)").map(Int.init)
            let expected = try f.floats("adam2_sample.\(p)"), absmax = try f.floats("adam2_absmax.\(p)")[0]
            let bound = max(Self.tolerance * absmax, noiseFactor * (try f.floats("adam2_noise.\(p)")[0]))
            compare(index.map { param.value[$0] }, expected, bound: bound, "\(name): \(p) after two Adam steps")
        }
        var buffers = 0
        for (b, entry) in net.state() {
            switch entry {
            case .buffer(let t):
                let index = try f.int64s("running_index.\(b)").map(Int.init)
                let expected = try f.floats("running_sample.\(b)")
                let bound = max(Self.tolerance * expected.reduce(0) { max($0, abs($1)) },
                                noiseFactor * (try f.floats("running_noise.\(b)")[0]))
                compare(index.map { t[$0] }, expected, bound: bound, "\(name): \(b) after two training steps")
                buffers += 1
            case .counter(let c):
                XCTAssertEqual(c.value, 2, "\(name): \(b)")
            case .parameter:
                break
            }
        }
        XCTAssertEqual(buffers, f.tensors.filter { $0.name.hasPrefix("running_sample.") }.count)

        if writeForPyTorch {
            // For `make_fixtures.py --check-swift`: PyTorch loads this strictly and compares its
            // eval-mode forward with the one Swift computed with the same trained weights.
            let refined = model.forward(x, training: false).array
            let path = NSTemporaryDirectory() + "deepdem_swift_written_\(name).safetensors"
            try Checkpoint.save(net, to: path, extraMetadata: [
                "golden_input": name,
                "golden_refined_eval": String(decoding: try JSONEncoder().encode(refined), as: UTF8.self),
            ])
        }
    }

    /// Refined heights within tolerance of their magnitude, and the correction (refined − initial)
    /// within tolerance of its own, smaller, magnitude.
    func compareRefined(_ actual: [Float], _ f: SafeTensors, _ key: String, initial: [Float]) throws {
        let expected = try f.floats(key)
        XCTAssertEqual(actual.count, expected.count, key)
        compare(actual, expected, bound: Self.tolerance * expected.reduce(0) { max($0, abs($1)) }, key)
        let residual = zip(expected, initial).map { $0 - $1 }
        compare(zip(actual, initial).map { $0 - $1 }, residual, bound: Self.tolerance * residual.reduce(0) { max($0, abs($1)) },
                "\(key) − initial")
    }

    func compare(_ actual: [Float], _ expected: [Float], bound: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, what, file: file, line: line)
        var worst = 0, worstError: Float = -1
        for i in 0..<min(actual.count, expected.count) {
            let e = abs(actual[i] - expected[i])
            if !(e <= worstError) { (worst, worstError) = (i, e) }
        }
        guard worstError >= 0 else { return }
        XCTAssertLessThanOrEqual(worstError, bound, "\(what): element \(worst) is \(actual[worst]), PyTorch \(expected[worst])",
                                 file: file, line: line)
    }
}

/// Deterministic weights that PyTorch's side (make_fixtures.py, `formula_weights`) produces
/// identically, so the golden models need no stored weights. For the k-th floating tensor of
/// `state()` (k from 0; parameters and buffers count, BatchNorm's counter does not) and its flat
/// element i:
///     z = splitmix64(k · 0x9E3779B97F4A7C15 XOR i)   (mod 2^64)
///     u = Float(z >> 40) / 2^24
///     rank ≥ 2: (2u − 1) · s, s = 1/sqrt(prod(shape[1:]));  BatchNorm weight: 1 + 0.1 · (2u − 1);
///     bias and running_mean: (2u − 1) · 0.1;  running_var: 1 + 0.5 · u.
enum FormulaWeights {
    static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    static func splitmix64(_ x: UInt64) -> UInt64 {
        var z = x &+ golden
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func fill(_ t: Tensor, k: Int, name: String) {
        let base = UInt64(k) &* golden
        let s = t.shape.count >= 2 ? 1 / Float(t.shape.dropFirst().reduce(1, *)).squareRoot() : 0
        for i in 0..<t.count {
            let u = Float(splitmix64(base ^ UInt64(i)) >> 40) / 16_777_216
            let signed = 2 * u - 1
            if t.shape.count >= 2 {
                t[i] = signed * s
            } else if name.hasSuffix("running_var") {
                t[i] = 1 + 0.5 * u
            } else if name.hasSuffix("running_mean") || name.hasSuffix("bias") {
                t[i] = signed * 0.1
            } else {
                t[i] = 1 + 0.1 * signed
            }
        }
    }

    static func apply(to net: any Network) {
        var k = 0
        for (name, entry) in net.state() {
            switch entry {
            case .parameter(let p): fill(p.value, k: k, name: name)
            case .buffer(let t): fill(t, k: k, name: name)
            case .counter(let c):
                c.value = 0
                continue
            }
            k += 1
        }
    }
}
