/// Nearest-neighbour upsampling by an integer factor (F.interpolate(scale_factor=2, "nearest")).
public final class Upsample: Layer {
    public let factor: Int
    private var inputShape: [Int] = []
    private var out = Slot()

    public init(factor: Int = 2) { self.factor = factor }

    public var parameterList: [Parameter] { [] }
    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let shape = [x.n, x.c, x.h &* factor, x.w &* factor]
        let y = training ? out.get(shape) : out.transient(shape)
        forward(x, into: y)
        return y
    }

    /// Upsamples into the first x.c channels of `y` ([N, ≥ C, fH, fW]): a U-Net decoder's
    /// concatenation then only copies the skip into the channels after them.
    func forward(_ x: Tensor, into y: Tensor) {
        let f = factor, h = x.h, w = x.w, ow = w &* f
        precondition(y.n == x.n && y.c >= x.c && y.h == h &* f && y.w == ow, "Upsample: \(x.shape) into \(y.shape)")
        inputShape = x.shape
        let channels = x.c, stride = y.c
        Parallel.forEach(x.n &* x.c) { planes, _ in
            for plane in planes {
                let src = x.data + plane &* h &* w
                let dst = y.data + ((plane / channels) &* stride &+ plane % channels) &* h &* w &* f &* f
                for i in 0..<h {
                    let row = dst + i &* f &* ow
                    let s = src + i &* w
                    var j = 0
                    if f == 2 {
                        while j &+ 4 <= w {
                            let v = load4(s + j)
                            store4(V4(v[0], v[0], v[1], v[1]), row + 2 &* j)
                            store4(V4(v[2], v[2], v[3], v[3]), row + (2 &* j &+ 4))
                            j &+= 4
                        }
                    }
                    while j < w {
                        let v = s[j]
                        for r in 0..<f { row[j &* f &+ r] = v }
                        j &+= 1
                    }
                    for r in 1..<f { (row + r &* ow).update(from: row, count: ow) }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let f = factor, h = inputShape[2], w = inputShape[3], ow = w &* f
        let dxT = TensorPool.shared.tensor(inputShape)
        Parallel.forEach(dy.n &* dy.c) { planes, _ in
            for plane in planes {
                let g = dy.data + plane &* h &* w &* f &* f
                let d = dxT.data + plane &* h &* w
                for i in 0..<h {
                    var j = 0
                    if f == 2 {
                        // The four inputs of each output, added in the general loop's order.
                        let r0 = g + 2 &* i &* ow, r1 = r0 + ow
                        while j &+ 4 <= w {
                            let a = load4(r0 + 2 &* j), b = load4(r0 + (2 &* j &+ 4))
                            let c = load4(r1 + 2 &* j), e = load4(r1 + (2 &* j &+ 4))
                            let s = V4(a[0], a[2], b[0], b[2]) + V4(a[1], a[3], b[1], b[3])
                                + V4(c[0], c[2], e[0], e[2]) + V4(c[1], c[3], e[1], e[3])
                            store4(s, d + (i &* w &+ j))
                            j &+= 4
                        }
                    }
                    while j < w {
                        var s: Float = 0
                        for r in 0..<f {
                            let y: Int = i &* f &+ r
                            let row = g + (y &* ow &+ j &* f)
                            for c in 0..<f { s += row[c] }
                        }
                        d[i &* w &+ j] = s
                        j &+= 1
                    }
                }
            }
        }
        return dxT
    }
}
