/// What an inference pass folds into a convolution's output: eval-mode BatchNorm's per-channel
/// y·a + b, a residual added (ResNet's shortcut), then ReLU. Winograd applies it to each output
/// plane as soon as the plane is written, while it is still in cache, instead of three more passes
/// over the whole tensor. Each step is the separate layer's own arithmetic in the same order, so the
/// fused pass gives the same bits as BatchNorm2d, `add` and ReLU one after another.
struct Epilogue {
    /// Per output channel; empty without BatchNorm.
    let scale: [Float], shift: [Float]
    /// Same shape as the output.
    let residual: Tensor?
    let relu: Bool

    init(batchNorm: BatchNorm2d? = nil, residual: Tensor? = nil, relu: Bool = false) {
        (scale, shift) = batchNorm?.inferenceAffine() ?? ([], [])
        self.residual = residual
        self.relu = relu
    }

    /// The pixels `pixels` of plane `index` (image·channels + channel) of the output at `y`.
    func apply(_ y: UnsafeMutablePointer<Float>, plane index: Int, channels: Int, pixels: Range<Int>, planeSize: Int) {
        let at = index &* planeSize &+ pixels.lowerBound, count = pixels.count
        let p = y + at
        if !scale.isEmpty {
            let a = scale[index % channels], b = shift[index % channels]
            for i in 0..<count { p[i] = p[i] * a + b }
        }
        if let residual {
            let r = UnsafePointer(residual.data) + at
            for i in 0..<count { p[i] = p[i] + r[i] }
        }
        if relu {
            for i in 0..<count {
                let v = p[i]
                p[i] = v < 0 ? 0 : v
            }
        }
    }

    /// The whole output [N, C, H, W], for the paths that finish it in one piece.
    func apply(to y: Tensor) {
        let hw = y.h &* y.w, channels = y.c
        Parallel.forEach(y.n &* channels) { planes, _ in
            for p in planes { apply(y.data, plane: p, channels: channels, pixels: 0..<hw, planeSize: hw) }
        }
    }
}
