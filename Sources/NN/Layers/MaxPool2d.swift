/// nn.MaxPool2d(kernel, stride, padding): padding counts as −∞. Backward routes each output's
/// gradient to the input element that won (first one on ties, as PyTorch's CPU kernel does).
public final class MaxPool2d: Layer {
    public let kernel: Int, stride: Int, padding: Int
    private var inputShape: [Int] = []
    private var argmax: [Int32] = []
    private var out = Slot(), dx = Slot()

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
        let y = out.get([x.n, x.c, oh, ow])
        inputShape = x.shape
        if argmax.count != y.count { argmax = [Int32](repeating: 0, count: y.count) }
        argmax.withUnsafeMutableBufferPointer { am in
            for plane in 0..<(x.n &* x.c) {
                let src = x.data + plane &* h &* w
                let dst = y.data + plane &* oh &* ow
                let arg = am.baseAddress! + plane &* oh &* ow
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
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let dxT = dx.get(inputShape)
        dxT.zero()
        let hw = inputShape[2] &* inputShape[3], ohw = dy.h &* dy.w
        argmax.withUnsafeBufferPointer { am in
            for plane in 0..<(dy.n &* dy.c) {
                let d = dxT.data + plane &* hw
                let g = dy.data + plane &* ohw
                let arg = am.baseAddress! + plane &* ohw
                for i in 0..<ohw { d[Int(arg[i])] += g[i] }
            }
        }
        return dxT
    }
}
