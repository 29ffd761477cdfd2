import Primitives

/// nn.Conv2d: square kernel, stride, zero padding, optional bias. Weight [Cout, Cin, k, k].
///
/// 3×3 stride-1 "same" convolutions (which dominate both U-Nets) run by Winograd's algorithm
/// (`WinogradF4Conv`, `WinogradConv`) when they have 16 or more input channels; those with up to
/// four output channels are computed directly (`NarrowConv`), forward and backward. The others: out =
/// W · im2col(x) (+ bias), sgemms of [Cout × Cin·k²] by [Cin·k² × OH·OW] (the columns of several
/// small images side by side, or a large image's in bands of rows); backward recomputes the columns
/// instead of keeping them (keeping them would multiply the activation memory by k²).
/// bench/README.md tabulates the choices. With `algorithm: .reference` every pass is the
/// definition (`ConvDefinition`), which the tests hold each route to.
public final class Conv2d: Layer {
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    public let weight: Parameter
    public let bias: Parameter?
    public let algorithm: ConvAlgorithm
    /// Of the automatic route's multiplications; the reference is fp32 (in Double) whatever this says.
    public let precision: Precision
    /// False for a network's first layer, whose input gradient nobody needs.
    public var computesInputGradient = true
    private let workspace: Workspace
    private var input: Tensor?
    private var out = Slot()

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, algorithm: ConvAlgorithm = .forNewLayers,
                precision: Precision = .forNewLayers, workspace: Workspace) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.algorithm = algorithm
        self.precision = precision
        self.workspace = workspace
        weight = Parameter([outChannels, inChannels, kernel, kernel])
        self.bias = bias ? Parameter([outChannels]) : nil
    }

    public var parameterList: [Parameter] { bias.map { [weight, $0] } ?? [weight] }
    public var fanIn: Int { inChannels * kernel * kernel }

    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {
        state.append((join(prefix, "weight"), .parameter(weight)))
        if let b = bias { state.append((join(prefix, "bias"), .parameter(b))) }
    }

    func geometry(_ x: Tensor) -> ConvGeometry {
        precondition(x.c == inChannels, "Conv2d: input has \(x.c) channels, expected \(inChannels)")
        return ConvGeometry(channels: inChannels, height: x.h, width: x.w, kernel: kernel, stride: stride, padding: padding)
    }

    /// Floats of im2col columns per GEMM: larger images go through in bands of output rows, so that
    /// the columns are packed from cache rather than memory (bench/README.md).
    static let columnBudget = 1 << 18

    /// Bands of output rows from which the workers take whole bands rather than sharing each band's GEMM.
    static let wholeBands = 4

    /// Winograd for 3×3 'same' convolutions of 16 or more input channels on images of 8×8 or more.
    /// With fewer channels (the first layer's 5 or 6 bands) its GEMMs are too thin to pay for
    /// transforming the output; on smaller images the rows of tiles, padded to four, are half empty.
    /// im2col's one GEMM takes those (bench/README.md).
    func winograd(_ x: Tensor) -> WinogradConv? {
        guard WinogradConv.applies(kernel: kernel, stride: stride, padding: padding), inChannels >= 16, min(x.h, x.w) >= 8 else { return nil }
        return WinogradConv(cin: inChannels, cout: outChannels, n: x.n, h: x.h, w: x.w, precision: precision)
    }

    /// F(4×4, 3×3) where the image has room for its tiles, for inference and for the weight gradient.
    /// It rounds about seven times more than F(2×2) (2e-6 against 3e-7 of the output's magnitude).
    /// Training's forward keeps F(2×2): its activations decide ReLU masks, the masked L1's signs and
    /// the statistics of training-mode BatchNorm over small batches, which amplify rounding past
    /// what the golden tests allow. Input gradients keep it too: with both gradients from F(4×4),
    /// runs on 1, 2 and 3 ranks drift apart by more than the rank-equivalence tests allow.
    /// Not in bf16-mixed: F(4×4)'s transforms scale values by up to 8 before they are rounded to
    /// 8 bits, which took its errors to 6 % of the output (F(2×2)'s about 0.5 %, BF16ConvolutionTests).
    func winogradF4(_ x: Tensor) -> WinogradF4Conv? {
        guard precision == .fp32, winograd(x) != nil, WinogradF4Conv.applies(h: x.h, w: x.w) else { return nil }
        return WinogradF4Conv(cin: inChannels, cout: outChannels, n: x.n, h: x.h, w: x.w, precision: precision)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        convolve(x, training: training, epilogue: nil)
    }

    /// Inference with what follows the convolution folded into its output (see `Epilogue`).
    func forward(_ x: Tensor, epilogue: Epilogue) -> Tensor {
        precondition(epilogue.scale.isEmpty || epilogue.scale.count == outChannels, "Conv2d: epilogue for \(epilogue.scale.count) channels")
        return convolve(x, training: false, epilogue: epilogue)
    }

    /// Winograd applies the epilogue plane by plane as it writes them; the other paths after the output is whole.
    private func convolve(_ x: Tensor, training: Bool, epilogue: Epilogue?) -> Tensor {
        let g = geometry(x)
        let shape = [x.n, outChannels, g.outHeight, g.outWidth]
        precondition(epilogue?.residual.map { $0.shape == shape } ?? true, "Conv2d: residual \(epilogue!.residual!.shape) for output \(shape)")
        let y = training ? out.get(shape) : out.transient(shape)
        input = training ? x : nil
        let b = bias.map { UnsafePointer($0.value.data) }
        if algorithm == .reference {
            ConvDefinition(g, images: x.n, outChannels: outChannels).forward(x.data, weight: weight.value.data, bias: b, into: y.data)
            epilogue?.apply(to: y)
            return y
        }
        if NarrowConv.applies(kernel: kernel, stride: stride, padding: padding, outChannels: outChannels) {
            NarrowConv(cin: inChannels, cout: outChannels, n: x.n, h: x.h, w: x.w)
                .forward(x.data, weight: weight.value.data, bias: b, into: y.data, workspace: workspace)
            epilogue?.apply(to: y)
            return y
        }
        if !training, let wg = winogradF4(x) {
            wg.forward(x.data, weight: weight.value.data, bias: b, into: y.data, epilogue: epilogue, workspace: workspace)
            return y
        }
        if let wg = winograd(x) {
            wg.forward(x.data, weight: weight.value.data, bias: b, into: y.data, epilogue: epilogue, workspace: workspace)
            return y
        }
        let perChunk = min(x.n, max(1, (gemmWideColumns + g.colCols - 1) / g.colCols))
        if perChunk > 1 {
            forward(x, g, imagesPerChunk: perChunk, into: y)
            epilogue?.apply(to: y)
            return y
        }
        let ow = g.outWidth, oh = g.outHeight
        let rowsPerBand = g.isPointwise ? oh : max(1, min(oh, Conv2d.columnBudget / (g.colRows &* ow)))
        let bands = (0..<x.n).flatMap { b in Swift.stride(from: 0, to: oh, by: rowsPerBand).map { (b, $0..<min($0 + rowsPerBand, oh)) } }
        // With `wholeBands` bands or more the workers take whole bands (their own columns, one
        // single-threaded GEMM each): one parallel region instead of two per band. The two ways cut
        // the GEMMs differently, so the shape chooses between them, never the number of workers.
        if !g.isPointwise && bands.count >= Conv2d.wholeBands {
            let cols = (0..<Parallel.workers).map { workspace.buffer(g.colRows * rowsPerBand * ow, .workerOperand($0)) }
            Parallel.forEach(bands.count) { range, w in
                for (b, rows) in bands[range] { band(x, g, image: b, rows: rows, col: cols[w], serial: true, into: y) }
            }
        } else {
            let col = g.isPointwise ? nil : workspace.buffer(g.colRows * rowsPerBand * ow, .operand)
            for (b, rows) in bands { band(x, g, image: b, rows: rows, col: col, serial: false, into: y) }
        }
        epilogue?.apply(to: y)
        return y
    }

    /// Output rows `rows` of image b: their columns (the input itself for 1×1), then the GEMM onto
    /// the bias, split over the workers unless `serial` (a worker running whole bands by itself).
    private func band(_ x: Tensor, _ g: ConvGeometry, image b: Int, rows: Range<Int>, col: UnsafeMutablePointer<Float>?,
                      serial: Bool, into y: Tensor) {
        let xb = x.data + b &* inChannels &* g.height &* g.width, n = rows.count &* g.outWidth
        let out = y.data + (b &* outChannels &* g.colCols &+ rows.lowerBound &* g.outWidth)
        if let bias {
            for o in 0..<outChannels { (out + o &* g.colCols).update(repeating: bias.value[o], count: n) }
        }
        if let col {
            if serial {
                im2col(xb, g, col, rowStride: n, rows: rows, channels: 0..<g.channels)
            } else {
                im2col(xb, g, col, rows: rows)
            }
        }
        gemm(false, false, outChannels, n, g.colRows, 1, weight.value.data, g.colRows, UnsafePointer(col ?? xb), n,
             bias == nil ? 0 : 1, out, g.colCols, split: !serial, precision: precision)
    }

    /// Small outputs: the columns of several images side by side in one GEMM,
    /// out[Cout × images·OH·OW] = W · [col(x₀) col(x₁) …] (+ bias), then back into NCHW.
    private func forward(_ x: Tensor, _ g: ConvGeometry, imagesPerChunk perChunk: Int, into y: Tensor) {
        let ohw = g.colCols, k = g.colRows, cout = outChannels
        let col = workspace.buffer(k &* perChunk &* ohw, .operand)
        let c = workspace.buffer(cout &* perChunk &* ohw, .product)
        for first in Swift.stride(from: 0, to: x.n, by: perChunk) {
            let images = min(perChunk, x.n &- first), cols = images &* ohw
            for i in 0..<images {
                im2col(x.data + (first &+ i) &* inChannels &* g.height &* g.width, g, col + i &* ohw, rowStride: cols)
            }
            if let bias {
                for o in 0..<cout { (c + o &* cols).update(repeating: bias.value[o], count: cols) }
            }
            gemm(false, false, cout, cols, k, 1, weight.value.data, k, col, cols, bias == nil ? 0 : 1, c, cols, precision: precision)
            let yb = y.data + first &* cout &* ohw
            Parallel.forEach(images &* cout) { range, _ in
                for item in range {
                    let i = item / cout, o = item % cout
                    (yb + item &* ohw).update(from: c + (o &* cols &+ i &* ohw), count: ohw)
                }
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("Conv2d.backward before forward") }
        let g = geometry(x)
        // Without an input gradient the input itself is returned, unchanged, and callers ignore it.
        let dxT = computesInputGradient ? TensorPool.shared.tensor(x.shape) : x
        if let bias { accumulateBiasGradient(dy, bias.grad) }
        if algorithm == .reference {
            let definition = ConvDefinition(g, images: x.n, outChannels: outChannels)
            definition.weightGradient(x.data, dy: dy.data, into: weight.grad.data)
            if computesInputGradient { definition.inputGradient(dy.data, weight: weight.value.data, into: dxT.data) }
            return dxT
        }
        if NarrowConv.applies(kernel: kernel, stride: stride, padding: padding, outChannels: outChannels) {
            NarrowConv(cin: inChannels, cout: outChannels, n: x.n, h: x.h, w: x.w)
                .backward(x.data, dy: dy.data, weight: weight.value.data, weightGradient: weight.grad.data,
                          dx: computesInputGradient ? dxT.data : nil, workspace: workspace)
            return dxT
        }
        if let wg = winograd(x) {
            let f4 = winogradF4(x)
            f4?.weightGradient(x.data, dy: dy.data, into: weight.grad.data, workspace: workspace)
            if f4 == nil || computesInputGradient {
                wg.backward(x.data, dy: dy.data, weight: weight.value.data, weightGradient: f4 == nil ? weight.grad.data : nil,
                            dx: computesInputGradient ? dxT.data : nil, workspace: workspace)
            }
            return dxT
        }
        // The column buffer doubles as the input-gradient columns once dW has used it.
        let col = g.isPointwise ? nil : workspace.buffer(g.colRows * g.colCols, .operand)
        for b in 0..<x.n {
            let xb = x.data + b &* inChannels &* g.height &* g.width
            let dyb = dy.data + b &* outChannels &* g.colCols
            let src: UnsafePointer<Float>
            if let col {
                im2col(xb, g, col)
                src = UnsafePointer(col)
            } else {
                src = UnsafePointer(xb)
            }
            // dW[Cout × K] += dy[Cout × HW] · colᵀ[HW × K]
            gemm(false, true, outChannels, g.colRows, g.colCols, 1, dyb, g.colCols, src, g.colCols, 1, weight.grad.data, g.colRows,
                 precision: precision)
            guard computesInputGradient else { continue }
            let dxb = dxT.data + b &* inChannels &* g.height &* g.width
            if let col {
                // dcol[K × HW] = Wᵀ[K × Cout] · dy[Cout × HW], then scatter back.
                gemm(true, false, g.colRows, g.colCols, outChannels, 1, weight.value.data, g.colRows, dyb, g.colCols, 0, col, g.colCols,
                     precision: precision)
                dxb.update(repeating: 0, count: inChannels &* g.height &* g.width)
                col2im(col, g, dxb)
            } else {
                gemm(true, false, g.colRows, g.colCols, outChannels, 1, weight.value.data, g.colRows, dyb, g.colCols, 0, dxb, g.colCols,
                     precision: precision)
            }
        }
        return dxT
    }

    private func accumulateBiasGradient(_ dy: Tensor, _ grad: Tensor) {
        let hw = dy.h &* dy.w, n = dy.n, cout = outChannels
        Parallel.forEach(cout) { range, _ in
            for o in range {
                var total = grad[o]
                for b in 0..<n { total += sum(dy.data + (b &* cout &+ o) &* hw, hw) }
                grad[o] = total
            }
        }
    }

    func reset(_ rng: inout SplitMix64) {
        Init.torchDefault(weight.value, fanIn: fanIn, bias: bias?.value, rng: &rng)
    }
}
