/// DeepDEM's residual formulation around a network (docs/ARCHITECTURE.md, Where the contracts are):
/// the network sees the chip with its DSM channel (0) centred on the chip mean and divided by the
/// global scale factor, and predicts a correction in those units:
///     refined = initial + gsf · net(x̃),   x̃₀ = (initial − mean(initial)) / gsf.
/// Training minimizes Σ mask·|refined − target| / Σ mask.
public final class ResidualModel {
    public let network: any Network
    public let gsf: Float
    private var normalized = Slot(), refined = Slot(), dOut = Slot()

    public init(network: any Network, gsf: Float) {
        self.network = network
        self.gsf = gsf
    }

    /// Refined heights [N, 1, H, W] for a batch whose channel 0 is the initial DSM; x is not modified.
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let xn = normalized.get(x.shape)
        let hw = x.h * x.w, chip = x.c &* hw, gsf = self.gsf
        // One chip per worker at a time; each chip's sum runs in the same order on one thread.
        Parallel.forEach(x.n) { chips, _ in
            for b in chips {
                let p = xn.data + b &* chip
                p.update(from: x.data + b &* chip, count: chip)
                var sum = 0.0
                for i in 0..<hw { sum += Double(p[i]) }
                let mean = Float(sum / Double(hw))
                for i in 0..<hw { p[i] = (p[i] - mean) / gsf }
            }
        }
        let out = network.forward(xn, training: training)
        let r = refined.get([x.n, 1, x.h, x.w])
        Parallel.forEach(x.n) { chips, _ in
            for b in chips {
                let x0 = x.data + b &* chip, o = out.data + b &* hw, d = r.data + b &* hw
                for i in 0..<hw { d[i] = x0[i] + gsf * o[i] }
            }
        }
        return r
    }

    /// Σ mask·|refined − target| and Σ mask for the last forward.
    public func loss(target: Tensor, mask: Tensor) -> (sum: Double, count: Double) {
        guard let r = refined.tensor else { preconditionFailure("ResidualModel.loss before forward") }
        precondition(target.count == r.count && mask.count == r.count, "loss: target/mask do not match the batch")
        var s = 0.0, c = 0.0
        for i in 0..<r.count {
            let m = Double(mask[i])
            s += m * Double(abs(r[i] - target[i]))
            c += m
        }
        return (s, c)
    }

    /// Backward of Σ mask·|refined − target| / normalizer, where the normalizer is Σ mask over the
    /// global batch (all ranks), so that ranks' gradients sum to the one-process gradient.
    public func backward(target: Tensor, mask: Tensor, normalizer: Double) {
        guard let r = refined.tensor else { preconditionFailure("ResidualModel.backward before forward") }
        let d = dOut.get(r.shape)
        let scale = gsf / Float(normalizer)
        for i in 0..<r.count {
            let e = r[i] - target[i]
            // d|e|/de is sign(e), 0 at e = 0 as in PyTorch.
            d[i] = e > 0 ? scale * mask[i] : (e < 0 ? -scale * mask[i] : 0)
        }
        network.backward(d)
    }
}
