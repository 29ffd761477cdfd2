import CBLAS

/// nn.ConvTranspose2d with kernel = stride (2×2/2 in the U-Nets): every input pixel paints its own
/// k×k output patch, so no patches overlap. Weight [Cin, Cout, k, k], bias [Cout].
///
/// Per image: P[Cout·k² × HW] = Wᵀ · x[Cin × HW], then P is scattered into the k-times larger output.
public final class ConvTranspose2d: Layer {
    public let inChannels: Int, outChannels: Int, kernel: Int
    public let weight: Parameter
    public let bias: Parameter?
    private let workspace: Workspace
    private var input: Tensor?
    private var out = Slot(), dx = Slot()

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int = 2, bias: Bool = true, workspace: Workspace) {
        self.inChannels = inChannels
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
        input = x
        let k = kernel, h = x.h, w = x.w, hw = h &* w, kk = k &* k
        let y = out.get([x.n, outChannels, h &* k, w &* k])
        let rows = outChannels &* kk
        let p = workspace.buffer(rows &* hw)
        for b in 0..<x.n {
            let xb = x.data + b &* inChannels &* hw
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(rows), Int32(hw), Int32(inChannels),
                        1, weight.value.data, Int32(rows), xb, Int32(hw), 0, p, Int32(hw))
            let yb = y.data + b &* outChannels &* hw &* kk
            let ow = w &* k
            for o in 0..<outChannels {
                let bo = bias?.value[o] ?? 0
                let plane = yb + o &* hw &* kk
                for ky in 0..<k {
                    for kx in 0..<k {
                        let src = p + ((o &* k &+ ky) &* k &+ kx) &* hw
                        for i in 0..<h {
                            let dst = plane + ((i &* k &+ ky) &* ow &+ kx)
                            let s = src + i &* w
                            for j in 0..<w { dst[j &* k] = s[j] + bo }
                        }
                    }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("ConvTranspose2d.backward before forward") }
        let k = kernel, h = x.h, w = x.w, hw = h &* w, kk = k &* k, ow = w &* k
        let rows = outChannels &* kk
        let dxT = dx.get(x.shape)
        let p = workspace.buffer(rows &* hw)
        for b in 0..<x.n {
            let dyb = dy.data + b &* outChannels &* hw &* kk
            // Gather dy into P's layout: the adjoint of the scatter in forward.
            for o in 0..<outChannels {
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
                if let bias { bias.grad[o] += sum }
            }
            let xb = x.data + b &* inChannels &* hw
            // dW[Cin × Cout·k²] += x[Cin × HW] · Pᵀ
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(inChannels), Int32(rows), Int32(hw),
                        1, xb, Int32(hw), p, Int32(hw), 1, weight.grad.data, Int32(rows))
            // dx[Cin × HW] = W[Cin × Cout·k²] · P
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(inChannels), Int32(hw), Int32(rows),
                        1, weight.value.data, Int32(rows), p, Int32(hw), 0, dxT.data + b &* inChannels &* hw, Int32(hw))
        }
        return dxT
    }

    /// PyTorch computes fan_in from weight.size(1)·k², i.e. Cout·k² for a transposed convolution.
    func reset(_ rng: inout SplitMix64) {
        Init.torchDefault(weight.value, fanIn: outChannels * kernel * kernel, bias: bias?.value, rng: &rng)
    }
}
