import Primitives
import XCTest
import NN

/// Finite-difference checks through whole networks and the masked L1 loss of the residual model:
/// they catch wiring mistakes (skips, concat order, shortcut branches) that per-layer checks miss.
final class ModelGradientTests: XCTestCase {
    func batch(_ shape: [Int], seed: UInt64) -> (x: Tensor, target: Tensor, mask: Tensor) {
        var rng = SplitMix64(seed: seed)
        let x = Tensor(shape)
        for i in 0..<x.count { x[i] = rng.normal() }
        let hw = shape[2] * shape[3]
        for b in 0..<shape[0] {                 // channel 0 is a DSM: heights around 10 m
            for i in 0..<hw { x[b * shape[1] * hw + i] = 10 + 3 * x[b * shape[1] * hw + i] }
        }
        let target = Tensor([shape[0], 1, shape[2], shape[3]])
        let mask = Tensor(target.shape)
        for b in 0..<shape[0] {
            for i in 0..<hw {
                target[b * hw + i] = x[b * shape[1] * hw + i] + 2 * rng.normal()
                mask[b * hw + i] = rng.unitFloat() < 0.85 ? 1 : 0
            }
        }
        return (x, target, mask)
    }

    /// d L/d sampled entries of every parameter tensor for L = Σ r·net(x) (r fixed, random),
    /// analytic vs central differences. Linear in the output, so only ReLU and max-pool kinks
    /// separate the two; a sample whose one-sided differences disagree straddles a kink and is
    /// skipped (BatchNorm moves whole channels, so crossings are common), but most must count.
    func checkNetwork(_ config: ModelConfig, shape: [Int], samples: Int = 4, h: Float = 3e-3, tol: Double = 1e-2,
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let net = try makeNetwork(config, seed: 7)
        let (x, _, _) = batch(shape, seed: 3)
        var rng = SplitMix64(seed: 11)
        let r = Tensor([shape[0], 1, shape[2], shape[3]])
        for i in 0..<r.count { r[i] = rng.normal() }
        func loss() -> Double {
            let y = net.forward(x, training: true)
            var s = 0.0
            for i in 0..<y.count { s += Double(r[i]) * Double(y[i]) }
            return s
        }
        net.parameters.zeroGrad()
        _ = net.forward(x, training: true)
        let dy = Tensor(r.shape)
        dy.copy(from: r)
        net.backward(dy)
        let grads = Array(net.parameters.gradBuffer)
        // Float32 forward passes put a noise floor under the differences: tensors whose
        // gradients are tiny next to the network's largest are judged against that floor.
        let floor = 0.02 * grads.map { abs(Double($0)) }.max()!
        var worst = 0.0, worstName = "", used = 0, tried = 0
        for (k, p) in net.parameters.parameters.enumerated() {
            let offset = net.parameters.offsets[k]
            let scale = max((0..<p.count).map { abs(Double(grads[offset + $0])) }.max()!, floor)
            for _ in 0..<samples {
                let i = Int(rng.next() % UInt64(p.count))
                let v = p.value[i]
                let l0 = loss()
                p.value[i] = v + h
                let lp = loss()
                p.value[i] = v - h
                let lm = loss()
                p.value[i] = v
                tried += 1
                if abs((lp - l0) - (l0 - lm)) / Double(h) > 0.5 * tol * scale { continue }
                used += 1
                let err = abs((lp - lm) / Double(2 * h) - Double(grads[offset + i])) / scale
                if err > worst { worst = err; worstName = net.parameters.names[k] }
            }
        }
        XCTAssertGreaterThan(used, tried / 2, "\(config.arch): too many samples straddle kinks", file: file, line: line)
        XCTAssertLessThan(worst, tol, "\(config.arch): worst relative gradient error \(worst) at \(worstName)", file: file, line: line)
    }

    func testUNetNoBN() throws {
        let u = UNetConfig(nInputChannels: 3, depth: 3, startKernel: 4, maxFilterDepth: 8, doBN: false, biasConvLayer: true)
        // Max-pool winners change under perturbation too, so the tolerance is looser than per layer;
        // a wiring mistake still shows as errors of order one. The golden tests are the tight check.
        try checkNetwork(ModelConfig(arch: "unet", bands: ["asp_dsm", "a", "b"], chipSize: 16, gsf: 3.5, unet: u),
                         shape: [3, 3, 16, 16], tol: 5e-2)
    }

    /// ResDepth's bilinear up-convs, wired through the whole U-Net.
    func testUNetBilinear() throws {
        let u = UNetConfig(nInputChannels: 3, depth: 3, startKernel: 4, maxFilterDepth: 8, doBN: false, biasConvLayer: true,
                           upMode: "bilinear")
        try checkNetwork(ModelConfig(arch: "unet", bands: ["asp_dsm", "a", "b"], chipSize: 16, gsf: 3.5, unet: u),
                         shape: [3, 3, 16, 16], tol: 5e-2)
    }

    /// The masked L1 loss and the residual formulation, through a network that is one 1×1
    /// convolution (smooth in its weights): d(Σ mask·|refined − target| / Σ mask)/dW.
    func testResidualLossGradient() {
        let net = PointwiseNetwork(channels: 3)
        let model = ResidualModel(network: net, gsf: 2.5)
        let (x, target, mask) = batch([3, 3, 5, 7], seed: 5)
        func loss() -> Double {
            _ = model.forward(x, training: true)
            let (s, c) = model.loss(target: target, mask: mask)
            return s / c
        }
        net.parameters.zeroGrad()
        _ = model.forward(x, training: true)
        let (_, count) = model.loss(target: target, mask: mask)
        model.backward(target: target, mask: mask, normalizer: count)
        let grads = Array(net.parameters.gradBuffer)
        for i in 0..<net.parameters.count {
            let v = net.parameters.values[i]
            net.parameters.values[i] = v + 1e-3
            let lp = loss()
            net.parameters.values[i] = v - 1e-3
            let lm = loss()
            net.parameters.values[i] = v
            XCTAssertEqual((lp - lm) / 2e-3, Double(grads[i]), accuracy: 1e-3 * max(1, abs(Double(grads[i]))), "parameter \(i)")
        }
    }

    func testStateNamesFollowPyTorch() throws {
        let u = UNetConfig(nInputChannels: 5, depth: 2, startKernel: 4, maxFilterDepth: 16, doBN: true, outerSkip: true, outerSkipBN: true)
        let names = try makeNetwork(ModelConfig(arch: "unet", bands: ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask"], chipSize: 8, gsf: 1, unet: u)).state().map(\.0)
        XCTAssertEqual(Array(names.prefix(6)), ["encoder.0.0.0.weight", "encoder.0.0.1.weight", "encoder.0.0.1.bias",
                                                "encoder.0.0.1.running_mean", "encoder.0.0.1.running_var",
                                                "encoder.0.0.1.num_batches_tracked"])
        XCTAssertTrue(names.contains("decoder.0.0.weight") && names.contains("decoder.0.1.0.weight") && names.contains("decoder.1.weight"))
        XCTAssertEqual(names.suffix(7).first, "last_layer.weight")
        XCTAssertEqual(names.last, "layer_outer_skip.0.num_batches_tracked")
        let e = EncoderConfig(name: "resnet34", inChannels: 6)
        let net = try makeNetwork(ModelConfig(arch: "resnet34-unet", bands: ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"], chipSize: 64, gsf: 1, encoder: e))
        let rn = net.state().map(\.0)
        XCTAssertEqual(rn.first, "encoder.conv1.weight")
        XCTAssertTrue(rn.contains("encoder.layer3.5.bn2.running_var") && rn.contains("encoder.layer4.0.downsample.1.weight"))
        XCTAssertTrue(rn.contains("decoder.blocks.4.conv2.1.bias"))
        XCTAssertEqual(rn.last, "segmentation_head.0.bias")
        XCTAssertEqual(net.parameters.count, 24_445_777)   // smp.Unet("resnet34", in_channels=6, classes=1)
        let bottleneck = try makeNetwork(ModelConfig(arch: "resnet50-unet", bands: net.config.bands, chipSize: 64,
                                                     gsf: 1, encoder: EncoderConfig(name: "resnet50", inChannels: 6)))
        let bn = bottleneck.state().map(\.0)
        XCTAssertTrue(bn.contains("encoder.layer1.0.conv3.weight") && bn.contains("encoder.layer1.0.downsample.0.weight"))
        XCTAssertTrue(bn.contains("encoder.layer4.2.bn3.running_var") && !bn.contains("encoder.layer4.2.downsample.0.weight"))
        XCTAssertEqual(bottleneck.parameters.count, 32_530_513)   // smp.Unet("resnet50", in_channels=6, classes=1)
    }
}

/// A network that is a single 1×1 convolution to one channel: smooth, so finite differences of
/// the loss through it are exact up to rounding.
final class PointwiseNetwork: Network {
    let conv: Conv2d
    let config: ModelConfig
    private(set) var parameters: ParameterSet
    var gradientReady: ((Int) -> Void)?
    var batchNorms: [BatchNorm2d] { [] }

    init(channels: Int) {
        conv = Conv2d(channels, 1, kernel: 1, workspace: Workspace())
        config = ModelConfig(arch: "pointwise", bands: [], chipSize: 0, gsf: 1)
        parameters = ParameterSet([("weight", conv.weight), ("bias", conv.bias!)])
        var rng = SplitMix64(seed: 9)
        for i in 0..<parameters.count { parameters.values[i] = 0.5 * rng.normal() }
    }

    func collectState(prefix: String, into state: inout [(String, StateEntry)]) { conv.collectState(prefix: prefix, into: &state) }
    func forward(_ x: Tensor, training: Bool) -> Tensor { conv.forward(x, training: training) }
    func backward(_ dy: Tensor) { _ = conv.backward(dy) }
}
