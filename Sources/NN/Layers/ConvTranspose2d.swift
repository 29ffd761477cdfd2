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
    private var out = Slot()

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
        input = training ? x : nil
        let k = kernel, h = x.h, w = x.w, hw = h &* w, kk = k &* k
        let shape = [x.n, outChannels, h &* k, w &* k]
        let y = training ? out.get(shape) : out.transient(shape)
        let rows = outChannels &* kk
        let p = workspace.buffer(rows &* hw)
        let biases = bias.map { UnsafePointer($0.value.data) }, ow = w &* k
        for b in 0..<x.n {
            let xb = x.data + b &* inChannels &* hw
            gemm(true, false, rows, hw, inChannels, 1, weight.value.data, rows, xb, hw, 0, p, hw)
            let yb = y.data + b &* outChannels &* hw &* kk
            Parallel.forEach(outChannels) { range, _ in
                for o in range {
                    let bo = biases?[o] ?? 0
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
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("ConvTranspose2d.backward before forward") }
        let k = kernel, h = x.h, w = x.w, hw = h &* w, kk = k &* k, ow = w &* k
        let rows = outChannels &* kk
        let dxT = TensorPool.shared.tensor(x.shape)
        let p = workspace.buffer(rows &* hw)
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
            gemm(false, true, inChannels, rows, hw, 1, xb, hw, p, hw, 1, weight.grad.data, rows)
            // dx[Cin × HW] = W[Cin × Cout·k²] · P
            gemm(false, false, inChannels, hw, rows, 1, weight.value.data, rows, p, hw, 0, dxT.data + b &* inChannels &* hw, hw)
        }
        return dxT
    }

    /// PyTorch computes fan_in from weight.size(1)·k², i.e. Cout·k² for a transposed convolution.
    func reset(_ rng: inout SplitMix64) {
        Init.torchDefault(weight.value, fanIn: outChannels * kernel * kernel, bias: bias?.value, rng: &rng)
    }
}
