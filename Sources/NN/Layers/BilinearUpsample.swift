/// Bilinear upsampling by an integer factor with align_corners=False (nn.Upsample(mode='bilinear',
/// scale_factor=f), as ResDepth's `up_mode='bilinear'` uses it).
///
/// Output pixel o along an axis of n inputs samples the input at s = (o + 0.5)/f − 0.5, clamped
/// below at 0 as PyTorch does; with i0 = ⌊s⌋, i1 = min(i0 + 1, n − 1) and λ = s − i0,
///     y[oy, ox] = (1 − λy)·((1 − λx)·x[i0y, i0x] + λx·x[i0y, i1x]) + λy·((1 − λx)·x[i1y, i0x] + λx·x[i1y, i1x]).
/// Backward is the adjoint: each output's gradient goes back to its four inputs with the same
/// weights. Each plane is one unit of work, summed in a fixed order, so the bits do not depend on
/// the thread count.
public final class BilinearUpsample: Layer {
    public let factor: Int
    private var inputShape: [Int] = []
    private var out = Slot()

    public init(factor: Int = 2) {
        precondition(factor >= 1, "BilinearUpsample: factor \(factor)")
        self.factor = factor
    }

    public var parameterList: [Parameter] { [] }
    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {}

    /// Where each output position along an axis of `n` inputs reads: both neighbours and their weights.
    struct Taps {
        var i0: [Int] = [], i1: [Int] = []
        var l0: [Float] = [], l1: [Float] = []

        init(inputs n: Int, factor f: Int) {
            let scale = 1 / Float(f)
            for o in 0..<(n &* f) {
                let s = max(scale * (Float(o) + 0.5) - 0.5, 0)
                let a = min(Int(s), n &- 1)
                let lambda = s - Float(a)
                i0.append(a)
                i1.append(a < n &- 1 ? a &+ 1 : a)
                l1.append(lambda)
                l0.append(1 - lambda)
            }
        }
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let f = factor, h = x.h, w = x.w, oh = h &* f, ow = w &* f
        inputShape = x.shape
        let y = training ? out.get([x.n, x.c, oh, ow]) : out.transient([x.n, x.c, oh, ow])
        let rows = Taps(inputs: h, factor: f), cols = Taps(inputs: w, factor: f)
        Parallel.forEach(x.n &* x.c) { planes, _ in
            for plane in planes {
                let src = UnsafePointer(x.data + plane &* h &* w)
                let dst = y.data + plane &* oh &* ow
                for oy in 0..<oh {
                    let r0 = src + rows.i0[oy] &* w, r1 = src + rows.i1[oy] &* w
                    let h0 = rows.l0[oy], h1 = rows.l1[oy]
                    let row = dst + oy &* ow
                    for ox in 0..<ow {
                        let a = cols.i0[ox], b = cols.i1[ox], w0 = cols.l0[ox], w1 = cols.l1[ox]
                        row[ox] = h0 * (w0 * r0[a] + w1 * r0[b]) + h1 * (w0 * r1[a] + w1 * r1[b])
                    }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let f = factor, h = inputShape[2], w = inputShape[3], oh = h &* f, ow = w &* f
        precondition(dy.shape == [inputShape[0], inputShape[1], oh, ow], "BilinearUpsample: gradient \(dy.shape) for input \(inputShape)")
        let dx = TensorPool.shared.tensor(inputShape)
        let rows = Taps(inputs: h, factor: f), cols = Taps(inputs: w, factor: f)
        Parallel.forEach(dy.n &* dy.c) { planes, _ in
            for plane in planes {
                let g = UnsafePointer(dy.data + plane &* oh &* ow)
                let d = dx.data + plane &* h &* w
                d.update(repeating: 0, count: h &* w)
                for oy in 0..<oh {
                    let r0 = d + rows.i0[oy] &* w, r1 = d + rows.i1[oy] &* w
                    let h0 = rows.l0[oy], h1 = rows.l1[oy]
                    let row = g + oy &* ow
                    for ox in 0..<ow {
                        let a = cols.i0[ox], b = cols.i1[ox], w0 = cols.l0[ox], w1 = cols.l1[ox]
                        let t0 = h0 * row[ox], t1 = h1 * row[ox]
                        r0[a] += w0 * t0
                        r0[b] += w1 * t0
                        r1[a] += w0 * t1
                        r1[b] += w1 * t1
                    }
                }
            }
        }
        return dx
    }
}
