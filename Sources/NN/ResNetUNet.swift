import Foundation
import Primitives

/// segmentation_models_pytorch `Unet` with a ResNet-18/34/50 encoder (depth 5, `ResNetEncoder`),
/// its `state_dict()` names included: `encoder.conv1/bn1/layerK.B.*`,
/// `decoder.blocks.i.conv{1,2}.{0,1}`, `segmentation_head.0`.
///
/// Encoder features: f1 = relu(bn1(conv1 7×7/2)) at H/2, then maxpool 3×3/2 and layer1…4 give
/// f2…f5 at H/4…H/32. Decoder block i: nearest ×2 upsample, concat the skip (f4, f3, f2, f1, none),
/// two conv3×3+BN+ReLU. The head is a conv3×3 to one channel.
public final class ResNetUNet: Network {
    public let config: ModelConfig
    let conv1: Conv2d, bn1: BatchNorm2d, relu1 = ReLU()
    let pool = MaxPool2d(kernel: 3, stride: 2, padding: 1)
    let stages: [[any ResNetBlock]]
    let ups: [Upsample]
    let blocks: [(conv1: ConvBlock, conv2: ConvBlock)]
    let head: Conv2d
    public var parameters: ParameterSet { flat.parameters }
    public var gradientReady: ((Int) -> Void)?
    private var flat: FlatState!
    private var features: [Tensor] = []
    private var cats: [Slot]
    private var ups2: [Slot], skips2: [Slot]
    private var skipGrads: [Tensor?] = []

    /// `config` has passed `validate()` (see `makeNetwork`).
    init(validated config: ModelConfig, seed: UInt64?) {
        let e = config.encoder!, encoder = ResNetEncoder.named[e.name]!
        self.config = config
        let ws = Workspace()
        let f = encoder.featureChannels
        conv1 = Conv2d(e.inChannels, f[0], kernel: 7, stride: 2, padding: 3, bias: false, workspace: ws)
        conv1.computesInputGradient = false
        bn1 = BatchNorm2d(f[0])
        var cin = f[0]
        stages = (0..<4).map { s in
            (0..<encoder.blockCounts[s]).map { b in
                defer { cin = f[s + 1] }
                return encoder.block(cin, width: ResNetEncoder.stageWidths[s], stride: s > 0 && b == 0 ? 2 : 1, workspace: ws)
            }
        }
        let skipChannels = [f[3], f[2], f[1], f[0], 0]
        var inC = f[4]
        var decoder: [(ConvBlock, ConvBlock)] = []
        for (i, out) in e.decoderChannels.enumerated() {
            decoder.append((ConvBlock(inC + skipChannels[i], out, batchNorm: true, bias: false, workspace: ws),
                            ConvBlock(out, out, batchNorm: true, bias: false, workspace: ws)))
            inC = out
        }
        blocks = decoder
        ups = (0..<5).map { _ in Upsample(factor: 2) }
        head = Conv2d(e.decoderChannels[4], 1, kernel: 3, padding: 1, bias: true, workspace: ws)
        cats = Array(repeating: Slot(), count: 5)
        ups2 = Array(repeating: Slot(), count: 5)
        skips2 = Array(repeating: Slot(), count: 5)
        if let seed { initialize(seed: seed) }
        flat = FlatState(self)
    }

    /// As smp builds the model without pretrained weights: torchvision's kaiming_normal(fan_out)
    /// for encoder convs (the first conv is re-created for in_channels ≠ 3 and gets nn.Conv2d's
    /// default), smp's kaiming_uniform(fan_in) for decoder convs, xavier_uniform for the head, BN 1/0
    /// (torchvision's zero_init_residual is off by default: a block's last BN starts at 1 too).
    private func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let firstIsDefault = config.encoder!.inChannels != 3
        for conv in [conv1] + stages.flatMap({ $0.flatMap(\.convs) }) {
            if conv === conv1 && firstIsDefault {
                conv.reset(&rng)
            } else {
                Init.normal(conv.weight.value, std: (2 / Float(conv.outChannels * conv.kernel * conv.kernel)).squareRoot(), &rng)
            }
        }
        for (a, b) in blocks {
            for conv in [a.conv, b.conv] { Init.uniform(conv.weight.value, (6 / Float(conv.fanIn)).squareRoot(), &rng) }
        }
        let fanOut = head.outChannels * head.kernel * head.kernel
        Init.uniform(head.weight.value, (6 / Float(head.fanIn + fanOut)).squareRoot(), &rng)
        head.bias!.value.zero()
    }

    public var batchNorms: [BatchNorm2d] {
        var all = [bn1]
        for block in stages.joined() { all += block.batchNorms }
        for (a, b) in blocks { all += [a.bn!, b.bn!] }
        return all
    }

    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {
        conv1.collectState(prefix: join(prefix, "encoder.conv1"), into: &state)
        bn1.collectState(prefix: join(prefix, "encoder.bn1"), into: &state)
        for (s, stage) in stages.enumerated() {
            for (b, block) in stage.enumerated() {
                block.collectState(prefix: join(prefix, "encoder.layer\(s + 1).\(b)"), into: &state)
            }
        }
        for (i, (a, b)) in blocks.enumerated() {
            a.collectState(prefix: join(prefix, "decoder.blocks.\(i).conv1"), into: &state)
            b.collectState(prefix: join(prefix, "decoder.blocks.\(i).conv2"), into: &state)
        }
        head.collectState(prefix: join(prefix, "segmentation_head.0"), into: &state)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.h % 32 == 0 && x.w % 32 == 0, "\(config.arch): chip \(x.h)×\(x.w) is not a multiple of 32")
        features.removeAll(keepingCapacity: true)
        var f = training
            ? relu1.forward(bn1.forward(conv1.forward(x, training: true), training: true), training: true)
            : conv1.forward(x, epilogue: Epilogue(batchNorm: bn1, relu: true))
        features.append(f)
        f = pool.forward(f, training: training)
        for stage in stages {
            for block in stage { f = block.forward(f, training: training) }
            features.append(f)
        }
        // features: f1 … f5; the decoder's skips are f4, f3, f2, f1, none.
        var d = features[4]
        for i in 0..<5 {
            let input: Tensor
            if i < 4 {
                let skip = features[3 - i], shape = [d.n, d.c + skip.c, skip.h, skip.w]
                input = training ? cats[i].get(shape) : cats[i].transient(shape)
                ups[i].forward(d, into: input)
                copyChannels(skip, into: input, at: d.c)
            } else {
                input = ups[i].forward(d, training: training)
            }
            d = blocks[i].conv2.forward(blocks[i].conv1.forward(input, training: training), training: training)
        }
        return head.forward(d, training: training)
    }

    public func backward(_ dy: Tensor) {
        let done: (any Layer) -> Void = { [unowned self] in flat.index.notify($0, gradientReady) }
        var d = head.backward(dy)
        done(head)
        skipGrads = Array(repeating: nil, count: 4)
        for i in (0..<5).reversed() {
            d = blocks[i].conv2.backward(d, done)
            d = blocks[i].conv1.backward(d, done)
            if i < 4 {
                let skip = features[3 - i]
                let du = ups2[i].get([d.n, d.c - skip.c, d.h, d.w])
                let ds = skips2[i].get(skip.shape)
                splitChannels(d, into: du, ds)
                skipGrads[3 - i] = ds
                d = du
            }
            d = ups[i].backward(d)
        }
        // d is now d(f5); walk the encoder back, adding each skip's gradient as its feature is reached.
        for s in (0..<4).reversed() {
            if s < 3 { accumulate(d, skipGrads[s + 1]!) }
            for block in stages[s].reversed() { d = block.backward(d, done) }
        }
        d = pool.backward(d)
        accumulate(d, skipGrads[0]!)
        d = relu1.backward(d)
        d = bn1.backward(d)
        done(bn1)
        _ = conv1.backward(d)
        done(conv1)
    }
}

/// The network a configuration names, initialized as PyTorch would from `seed`; with no seed the
/// weights stay zero for a checkpoint to fill (drawing them costs a refinement's start 0.2 s).
/// Throws a `ModelConfigError` before allocating anything when the configuration is not buildable.
public func makeNetwork(_ config: ModelConfig, seed: UInt64? = 0) throws -> any Network {
    try config.validate()
    return config.arch == "unet" ? UNet(validated: config, seed: seed) : ResNetUNet(validated: config, seed: seed)
}
