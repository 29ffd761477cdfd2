import Primitives

/// ResDepth's U-Net (prs-eth/ResDepth lib/UNet.py), with its `state_dict()` names:
/// `encoder.i.0.{0,1}` conv[+BN] then MaxPool 2×2; `bottleneck.{0,1}`; `decoder.i.0` the up-conv
/// (`up_mode` 'transpose': a 2×2/2 transposed conv; 'bilinear': bilinear ×2 then a biased conv1×1,
/// `decoder.i.0.1`) and `decoder.i.1.{0,1}` conv[+BN] (the last decoder entry is the bare up-conv
/// `decoder.{depth−1}`); additive skips; `last_layer` conv3×3 → 1 channel;
/// optionally `layer_outer_skip.0` (BatchNorm2d(1)) on the outer skip that adds input channel 0.
/// Filters start_kernel·2^i capped at max_filter_depth; H and W must be multiples of 2^depth.
public final class UNet: Network {
    public let config: ModelConfig
    let u: UNetConfig
    let encoder: [ConvBlock]
    let pools: [MaxPool2d]
    let bottleneck: ConvBlock
    let upconvs: [any Layer]
    let decoderConvs: [ConvBlock]            // depth − 1 of them
    let lastLayer: Conv2d
    let outerSkipBN: BatchNorm2d?
    public var parameters: ParameterSet { flat.parameters }
    public var gradientReady: ((Int) -> Void)?
    private var flat: FlatState!
    private var skips: [Tensor] = []
    private var sums: [Slot]
    private var skipGrads: [Tensor?]
    private var channel0 = Slot(), output = Slot(), dChannel0 = Slot()
    private var input: Tensor?

    /// `config` has passed `validate()` (see `makeNetwork`).
    init(validated config: ModelConfig, seed: UInt64?) {
        let u = config.unet!
        self.config = config
        self.u = u
        let ws = Workspace()
        let filters = (0..<u.depth).map { min(u.startKernel << $0, u.maxFilterDepth) }
        var enc: [ConvBlock] = []
        var cin = u.nInputChannels
        for f in filters {
            enc.append(ConvBlock(cin, f, batchNorm: u.doBN, bias: !u.doBN, workspace: ws))
            cin = f
        }
        enc[0].conv.computesInputGradient = false
        encoder = enc
        pools = filters.map { _ in MaxPool2d(kernel: 2, stride: 2) }
        bottleneck = ConvBlock(filters.last!, filters.last!, batchNorm: u.doBN, bias: !u.doBN, workspace: ws)
        let up = Array(filters.reversed())
        upconvs = up.map { c -> any Layer in
            u.upMode == "bilinear" ? BilinearUpConv(c, c, workspace: ws) : ConvTranspose2d(c, c, workspace: ws)
        }
        decoderConvs = (0..<(u.depth - 1)).map {
            ConvBlock(up[$0], up[$0 + 1], batchNorm: u.doBN, bias: !u.doBN, workspace: ws)
        }
        lastLayer = Conv2d(u.startKernel, 1, kernel: 3, padding: 1, bias: u.biasConvLayer, workspace: ws)
        outerSkipBN = u.outerSkip && u.outerSkipBN ? BatchNorm2d(1) : nil
        sums = Array(repeating: Slot(), count: u.depth)
        skipGrads = Array(repeating: nil, count: u.depth)
        if let seed {
            var rng = SplitMix64(seed: seed)
            for l in allLayers {
                (l as? Conv2d)?.reset(&rng)
                (l as? ConvTranspose2d)?.reset(&rng)
                (l as? BilinearUpConv)?.conv.reset(&rng)
            }
        }
        flat = FlatState(self)
    }

    public var batchNorms: [BatchNorm2d] { allLayers.compactMap { $0 as? BatchNorm2d } }

    var allLayers: [any Layer] {
        var l: [any Layer] = encoder.flatMap(\.layers) + bottleneck.layers + upconvs + decoderConvs.flatMap(\.layers)
        l.append(lastLayer)
        if let outerSkipBN { l.append(outerSkipBN) }
        return l
    }

    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {
        for (i, block) in encoder.enumerated() { block.collectState(prefix: join(prefix, "encoder.\(i).0"), into: &state) }
        bottleneck.collectState(prefix: join(prefix, "bottleneck"), into: &state)
        for i in 0..<u.depth {
            if i < u.depth - 1 {
                upconvs[i].collectState(prefix: join(prefix, "decoder.\(i).0"), into: &state)
                decoderConvs[i].collectState(prefix: join(prefix, "decoder.\(i).1"), into: &state)
            } else {
                upconvs[i].collectState(prefix: join(prefix, "decoder.\(i)"), into: &state)
            }
        }
        lastLayer.collectState(prefix: join(prefix, "last_layer"), into: &state)
        outerSkipBN?.collectState(prefix: join(prefix, "layer_outer_skip.0"), into: &state)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let m = 1 << u.depth
        precondition(x.h % m == 0 && x.w % m == 0, "unet: chip \(x.h)×\(x.w) is not a multiple of \(m)")
        input = x
        skips.removeAll(keepingCapacity: true)
        var out = x
        for i in 0..<u.depth {
            let a = encoder[i].forward(out, training: training)
            skips.append(a)
            out = pools[i].forward(a, training: training)
        }
        out = bottleneck.forward(out, training: training)
        for i in 0..<u.depth {
            let up = upconvs[i].forward(out, training: training)
            let skip = skips[u.depth - 1 - i]
            let s = sums[i].get(up.shape)
            add(skip, up, into: s)
            out = i < u.depth - 1 ? decoderConvs[i].forward(s, training: training) : s
        }
        var y = lastLayer.forward(out, training: training)
        if u.outerSkip {
            let res = output.get(y.shape)
            let c0 = channel0.get([x.n, 1, x.h, x.w])
            let hw = x.h * x.w
            for b in 0..<x.n { (c0.data + b * hw).update(from: x.data + b * x.c * hw, count: hw) }
            let skip = outerSkipBN?.forward(c0, training: training) ?? c0
            add(skip, y, into: res)
            y = res
        }
        return y
    }

    public func backward(_ dy: Tensor) {
        let done: (any Layer) -> Void = { [unowned self] in flat.index.notify($0, gradientReady) }
        if let bn = outerSkipBN {
            // Only BN's parameters need this branch's gradient; the input's is never used.
            let d = dChannel0.get(dy.shape)
            d.copy(from: dy)
            _ = bn.backward(d)
            done(bn)
        }
        var d = lastLayer.backward(dy)
        done(lastLayer)
        for i in (0..<u.depth).reversed() {
            if i < u.depth - 1 { d = decoderConvs[i].backward(d, done) }
            skipGrads[u.depth - 1 - i] = d
            d = upconvs[i].backward(d)
            done(upconvs[i])
        }
        d = bottleneck.backward(d, done)
        for i in (0..<u.depth).reversed() {
            d = pools[i].backward(d)
            accumulate(d, skipGrads[i]!)
            d = encoder[i].backward(d, done)
        }
    }
}
