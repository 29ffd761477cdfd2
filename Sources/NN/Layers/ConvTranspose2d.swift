import Primitives

/// nn.ConvTranspose2d with kernel = stride (2×2/2 in the U-Nets): every input pixel paints its own
/// k×k output patch, so no patches overlap. Weight [Cin, Cout, k, k], bias [Cout].
///
/// Per image: P[Cout·k² × HW] = Wᵀ · x[Cin × HW], then P is scattered into the k-times larger output
/// (forward takes small images several at a time).
public final class ConvTranspose2d: Layer {
    public let inChannels: Int, outChannels: Int, kernel: Int
    public let weight: Parameter
    public let bias: Parameter?
    public let precision: Precision
    private let workspace: Workspace
    private var input: Tensor?
    private var out = Slot()

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int = 2, bias: Bool = true, precision: Precision = .forNewLayers,
                workspace: Workspace) {
        self.inChannels = inChannels
        self.precision = precision
        self.outChannels = outChannels
        self.kernel = kernel
        self.workspace = workspace
        weight = Parameter([inChannels, outChannels, kernel, kernel])
        self.bias = bias ? Parameter([outChannels]) : nil
    }

    public var parameterList: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {
        state.append((join(prefix, "weight"), .parameter(weight)))
        if let b = bias { state.append((join(prefix, "bias"), .parameter(b))) }
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.c == inChannels, "ConvTranspose2d: input has \(x.c) channels, expected \(inChannels)")
        input = training ? x : nil
        let k = kernel, h = x.h, w = x.w, hw = h &* w, kk = k &* k, cin = inChannels
        let shape = [x.n, outChannels, h &* k, w &* k]
        let y = training ? out.get(shape) : out.transient(shape)
        let rows = outChannels &* kk
        // Small images are multiplied several at a time, side by side in one [Cin × images·HW]
        // matrix: an 8×8 image alone would leave the GEMM too narrow to split over the workers.
        let perChunk = min(x.n, max(1, (gemmWideColumns + hw - 1) / hw))
        let p = workspace.buffer(rows &* perChunk &* hw, .product)
        let packed = perChunk > 1 ? workspace.buffer(cin &* perChunk &* hw, .operand) : nil
        for first in stride(from: 0, to: x.n, by: perChunk) {
            let images = min(perChunk, x.n &- first), cols = images &* hw
            let xb = x.data + first &* cin &* hw
            var src = UnsafePointer(xb)
            if let packed, images > 1 {
                Parallel.forEach(cin) { channels, _ in
                    for c in channels {
                        for i in 0..<images { (packed + (c &* cols &+ i &* hw)).update(from: xb + (i &* cin &+ c) &* hw, count: hw) }
                    }
                }
                src = UnsafePointer(packed)
            }
            gemm(true, false, rows, cols, cin, 1, weight.value.data, rows, src, cols, 0, p, cols, precision: precision)
            scatter(p, columns: cols, images: images, h: h, w: w, into: y.data + first &* outChannels &* hw &* kk)
        }
        return y
    }

    /// Each column of P (rows (o, ky, kx), one column per input pixel of each image) into its output patch, plus bias.
    private func scatter(_ p: UnsafePointer<Float>, columns cols: Int, images: Int, h: Int, w: Int, into y: UnsafeMutablePointer<Float>) {
        let k = kernel, hw = h &* w, kk = k &* k, ow = w &* k
        let biases = bias.map { UnsafePointer($0.value.data) }
        Parallel.forEach(images &* outChannels) { range, _ in
            for item in range {
                let image = item / outChannels, o = item % outChannels
                let bo = biases?[o] ?? 0
                let plane = y + (image &* outChannels &+ o) &* hw &* kk
                for ky in 0..<k {
                    let src = p + (((o &* k &+ ky) &* k) &* cols &+ image &* hw)
                    for i in 0..<h {
                        let dst = plane + (i &* k &+ ky) &* ow, s = src + i &* w
                        var j = 0
                        if k == 2 {
                            // The two kx rows interleave into one output row.
                            let b = V4(repeating: bo), s1 = s + cols
                            while j &+ 4 <= w {
                                storeInterleaved(load4(s + j) + b, load4(s1 + j) + b, dst + 2 &* j)
                                j &+= 4
                            }
                        }
                        while j < w {
                            for kx in 0..<k { dst[j &* k &+ kx] = s[kx &* cols &+ j] + bo }
                            j &+= 1
                        }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("ConvTranspose2d.backward before forward") }
        let k = kernel, h = x.h, w = x.w, hw = h &* w, kk = k &* k, ow = w &* k
        let rows = outChannels &* kk
        let dxT = TensorPool.shared.tensor(x.shape)
        let p = workspace.buffer(rows &* hw, .product)
        let biasGrad = bias.map { $0.grad.data }
        for b in 0..<x.n {
            let dyb = dy.data + b &* outChannels &* hw &* kk
            // Gather dy into P's layout: the adjoint of the scatter in forward.
            Parallel.forEach(outChannels) { range, _ in
                for o in range {
                    let plane = dyb + o &* hw &* kk
                    var sum: Float = 0
                    for ky in 0..<k {
                        for kx in 0..<k {
                            let dst = p + ((o &* k &+ ky) &* k &+ kx) &* hw
                            for i in 0..<h {
                                let src = plane + ((i &* k &+ ky) &* ow &+ kx)
                                let d = dst + i &* w
                                for j in 0..<w {
                                    let v = src[j &* k]
                                    d[j] = v
                                    sum += v
                                }
                            }
                        }
                    }
                    biasGrad?[o] += sum
                }
            }
            let xb = x.data + b &* inChannels &* hw
            // dW[Cin × Cout·k²] += x[Cin × HW] · Pᵀ
            gemm(false, true, inChannels, rows, hw, 1, xb, hw, p, hw, 1, weight.grad.data, rows, precision: precision)
            // dx[Cin × HW] = W[Cin × Cout·k²] · P
            gemm(false, false, inChannels, hw, rows, 1, weight.value.data, rows, p, hw, 0, dxT.data + b &* inChannels &* hw, hw,
                 precision: precision)
        }
        return dxT
    }

    /// PyTorch computes fan_in from weight.size(1)·k², i.e. Cout·k² for a transposed convolution.
    func reset(_ rng: inout SplitMix64) {
        Init.torchDefault(weight.value, fanIn: outChannels * kernel * kernel, bias: bias?.value, rng: &rng)
    }
}
