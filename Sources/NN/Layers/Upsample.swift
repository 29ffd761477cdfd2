/// Nearest-neighbour upsampling by an integer factor (F.interpolate(scale_factor=2, "nearest")).
public final class Upsample: Layer {
    public let factor: Int
    private var inputShape: [Int] = []
    private var out = Slot()

    public init(factor: Int = 2) { self.factor = factor }

    public var parameterList: [Parameter] { [] }
    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let f = factor, h = x.h, w = x.w, ow = w &* f
        let y = training ? out.get([x.n, x.c, h &* f, ow]) : out.transient([x.n, x.c, h &* f, ow])
        inputShape = x.shape
        Parallel.forEach(x.n &* x.c) { planes, _ in
            for plane in planes {
                let src = x.data + plane &* h &* w
                let dst = y.data + plane &* h &* w &* f &* f
                for i in 0..<h {
                    let row = dst + i &* f &* ow
                    let s = src + i &* w
                    for j in 0..<w {
                        let v = s[j]
                        for r in 0..<f { row[j &* f &+ r] = v }
                    }
                    for r in 1..<f { (row + r &* ow).update(from: row, count: ow) }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let f = factor, h = inputShape[2], w = inputShape[3], ow = w &* f
        let dxT = TensorPool.shared.tensor(inputShape)
        Parallel.forEach(dy.n &* dy.c) { planes, _ in
            for plane in planes {
                let g = dy.data + plane &* h &* w &* f &* f
                let d = dxT.data + plane &* h &* w
                for i in 0..<h {
                    for j in 0..<w {
                        var s: Float = 0
                        for r in 0..<f {
                            let y: Int = i &* f &+ r
                            let row = g + (y &* ow &+ j &* f)
                            for c in 0..<f { s += row[c] }
                        }
                        d[i &* w &+ j] = s
                    }
                }
            }
        }
        return dxT
    }
}
