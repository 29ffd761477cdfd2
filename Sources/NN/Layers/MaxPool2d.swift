/// nn.MaxPool2d(kernel, stride, padding): padding counts as −∞. Backward routes each output's
/// gradient to the input element that won (first one on ties, as PyTorch's CPU kernel does).
public final class MaxPool2d: Layer {
    public let kernel: Int, stride: Int, padding: Int
    private var inputShape: [Int] = []
    private var argmax: [Int32] = []
    private var out = Slot()

    public init(kernel: Int, stride: Int, padding: Int = 0) {
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    public var parameterList: [Parameter] { [] }
    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let h = x.h, w = x.w, k = kernel, s = stride, p = padding
        let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
        let y = training ? out.get([x.n, x.c, oh, ow]) : out.transient([x.n, x.c, oh, ow])
        guard training else {
            Parallel.forEach(x.n &* x.c) { planes, _ in
                for plane in planes { pool(x.data + plane &* h &* w, h: h, w: w, into: y.data + plane &* oh &* ow, oh: oh, ow: ow) }
            }
            return y
        }
        inputShape = x.shape
        if argmax.count != y.count { argmax = [Int32](repeating: 0, count: y.count) }
        argmax.withUnsafeMutableBufferPointer { am in
            let args = am.baseAddress!
            Parallel.forEach(x.n &* x.c) { planes, _ in
                for plane in planes {
                    let src = x.data + plane &* h &* w
                    let dst = y.data + plane &* oh &* ow
                    let arg = args + plane &* oh &* ow
                    if k == 2 && s == 2 && p == 0 {
                        Self.pool2x2(src, w: w, oh: oh, ow: ow, into: dst, argmax: arg)
                        continue
                    }
                    for oy in 0..<oh {
                        let y0 = max(oy &* s &- p, 0), y1 = min(oy &* s &- p &+ k, h)
                        for ox in 0..<ow {
                            let x0 = max(ox &* s &- p, 0), x1 = min(ox &* s &- p &+ k, w)
                            var best = -Float.infinity, at = y0 &* w &+ x0
                            for iy in y0..<y1 {
                                for ix in x0..<x1 {
                                    let v = src[iy &* w &+ ix]
                                    if v > best || v.isNaN { best = v; at = iy &* w &+ ix }
                                }
                            }
                            dst[oy &* ow &+ ox] = best
                            arg[oy &* ow &+ ox] = Int32(at)
                        }
                    }
                }
            }
        }
        return y
    }

    /// One plane's maxima without the winners backward needs (inference): the window's rows reduced
    /// four columns at a time, then the window's columns; NaN wins as in training.
    private func pool(_ src: UnsafePointer<Float>, h: Int, w: Int, into dst: UnsafeMutablePointer<Float>, oh: Int, ow: Int) {
        let k = kernel, s = stride, p = padding
        if k == 2 && s == 2 && p == 0 {
            for oy in 0..<oh {
                let r0 = src + 2 &* oy &* w, r1 = r0 + w, d = dst + oy &* ow
                var ox = 0
                while ox &+ 4 <= ow {
                    let (e0, o0) = loadDeinterleaved(r0 + 2 &* ox), (e1, o1) = loadDeinterleaved(r1 + 2 &* ox)
                    store4(Self.larger(Self.larger(Self.larger(e0, o0), e1), o1), d + ox)
                    ox &+= 4
                }
                while ox < ow {
                    let i = 2 &* ox
                    d[ox] = Self.larger(Self.larger(Self.larger(V4(repeating: r0[i]), V4(repeating: r0[i &+ 1])),
                                                    V4(repeating: r1[i])), V4(repeating: r1[i &+ 1]))[0]
                    ox &+= 1
                }
            }
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: w) { rows in
            let r = rows.baseAddress!
            for oy in 0..<oh {
                let y0 = max(oy &* s &- p, 0), y1 = min(oy &* s &- p &+ k, h)
                r.update(from: src + y0 &* w, count: w)
                for iy in (y0 &+ 1)..<max(y1, y0 &+ 1) {
                    let row = src + iy &* w
                    var x = 0
                    while x &+ 4 <= w {
                        store4(Self.larger(load4(r + x), load4(row + x)), r + x)
                        x &+= 4
                    }
                    while x < w {
                        if row[x] > r[x] || row[x].isNaN { r[x] = row[x] }
                        x &+= 1
                    }
                }
                let d = dst + oy &* ow
                var vectorized = 0..<0
                if k == 3 && s == 2 && p == 1 {
                    // ResNet's stem pool: the windows of outputs ox…ox + 3 are columns 2·ox − 1, 2·ox and
                    // 2·ox + 1 of four pairs, compared in that order.
                    var ox = 1
                    while 2 &* ox &+ 9 <= w && ox &+ 4 <= ow {
                        let (left, centre) = loadDeinterleaved(r + (2 &* ox &- 1)), right = loadDeinterleaved(r + (2 &* ox &+ 1)).0
                        store4(Self.larger(Self.larger(left, centre), right), d + ox)
                        ox &+= 4
                    }
                    vectorized = 1..<ox
                }
                for ox in 0..<ow where !vectorized.contains(ox) {
                    let x0 = max(ox &* s &- p, 0), x1 = min(ox &* s &- p &+ k, w)
                    var best = r[x0]
                    for ix in (x0 &+ 1)..<max(x1, x0 &+ 1) where r[ix] > best || r[ix].isNaN { best = r[ix] }
                    d[ox] = best
                }
            }
        }
    }

    /// b where it is larger than a or NaN, else a.
    @inline(__always) private static func larger(_ a: V4, _ b: V4) -> V4 {
        a.replacing(with: b, where: (b .> a) .| (b .!= b))
    }

    /// The U-Net's 2×2/2 pooling without the general window bounds; same order of comparisons.
    private static func pool2x2(_ src: UnsafePointer<Float>, w: Int, oh: Int, ow: Int,
                                into dst: UnsafeMutablePointer<Float>, argmax arg: UnsafeMutablePointer<Int32>) {
        for oy in 0..<oh {
            let top = 2 &* oy &* w
            let r0 = src + top, r1 = r0 + w
            for ox in 0..<ow {
                let i = 2 &* ox
                var best = r0[i], at = top &+ i
                var v = r0[i &+ 1]
                if v > best || v.isNaN { best = v; at = top &+ i &+ 1 }
                v = r1[i]
                if v > best || v.isNaN { best = v; at = top &+ w &+ i }
                v = r1[i &+ 1]
                if v > best || v.isNaN { best = v; at = top &+ w &+ i &+ 1 }
                dst[oy &* ow &+ ox] = best
                arg[oy &* ow &+ ox] = Int32(truncatingIfNeeded: at)
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let dxT = TensorPool.shared.tensor(inputShape)
        let hw = inputShape[2] &* inputShape[3], ohw = dy.h &* dy.w
        argmax.withUnsafeBufferPointer { am in
            let args = am.baseAddress!
            Parallel.forEach(dy.n &* dy.c) { planes, _ in
                for plane in planes {
                    let d = dxT.data + plane &* hw
                    let g = dy.data + plane &* ohw
                    let arg = args + plane &* ohw
                    d.update(repeating: 0, count: hw)
                    for i in 0..<ohw { d[Int(arg[i])] += g[i] }
                }
            }
        }
        return dxT
    }
}
