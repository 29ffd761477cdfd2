import CBLAS

/// A stride-1 convolution with "same" padding computed without im2col.
///
/// The batch is copied once into a zero-padded, channel-major buffer P[Cin × (N·Hp·Wp)] (Hp, Wp
/// the padded sizes). Output position q = n·Hp·Wp + y·Wp + x then reads input q + ky·Wp + kx for
/// tap (ky, kx), so each tap is one GEMM over a *shifted view* of P:
///     out[Cout × L] += W_tap[Cout × Cin] · P[:, off_tap ..< off_tap + L]
/// Positions with x ≥ W or y ≥ H are computed and thrown away (a few percent at large sizes).
/// Backward uses the same views: dW_tap += dy · P_tapᵀ and dP[:, off_tap…] += W_tapᵀ · dy, where
/// dy is laid out like the output with zeros at the thrown-away positions.
struct ShiftedConv {
    let cin: Int, cout: Int, k: Int, pad: Int
    let n: Int, h: Int, w: Int

    var hp: Int { h + 2 * pad }
    var wp: Int { w + 2 * pad }
    var plane: Int { hp * wp }
    /// Output positions computed (the whole padded batch).
    var length: Int { n * plane }
    /// Row stride of the padded buffers: the largest tap offset of slack keeps every view in bounds.
    var stride: Int { length + (k - 1) * (wp + 1) }
    var taps: Int { k * k }

    static func applies(kernel: Int, stride: Int, padding: Int) -> Bool {
        kernel > 1 && kernel % 2 == 1 && stride == 1 && padding == kernel / 2
    }

    func offset(_ tap: Int) -> Int { (tap / k) * wp + tap % k }

    /// P ← x, NCHW into the padded channel-major layout, zeros around.
    func pack(_ x: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float>) {
        p.update(repeating: 0, count: cin * stride)
        for c in 0..<cin {
            for b in 0..<n {
                let src = x + (b &* cin &+ c) &* h &* w
                let at: Int = c &* stride &+ b &* plane &+ pad &* wp &+ pad
                let dst = p + at
                for y in 0..<h { (dst + y &* wp).update(from: src + y &* w, count: w) }
            }
        }
    }

    /// Weights [Cout, Cin, k, k] → taps × [Cout × Cin].
    func packWeights(_ wt: UnsafePointer<Float>, into r: UnsafeMutablePointer<Float>) {
        let kk = taps
        for o in 0..<cout {
            for i in 0..<cin {
                let src = wt + (o &* cin &+ i) &* kk
                for t in 0..<kk { r[(t &* cout &+ o) &* cin &+ i] = src[t] }
            }
        }
    }

    /// out[Cout × L] = Σ_tap W_tap · P_tap (+ bias).
    func forward(packed p: UnsafePointer<Float>, weights r: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 out o: UnsafeMutablePointer<Float>) {
        for c in 0..<cout { (o + c &* length).update(repeating: bias?[c] ?? 0, count: length) }
        for t in 0..<taps {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(length), Int32(cin),
                        1, r + t &* cout &* cin, Int32(cin), p + offset(t), Int32(stride), 1, o, Int32(length))
        }
    }

    /// y (NCHW) ← the valid positions of out.
    func unpackOutput(_ o: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        for b in 0..<n {
            for c in 0..<cout {
                let at: Int = c &* length &+ b &* plane
                let src = o + at
                let dst = y + (b &* cout &+ c) &* h &* w
                for yy in 0..<h { (dst + yy &* w).update(from: src + yy &* wp, count: w) }
            }
        }
    }

    /// The output layout of dy (NCHW), zeros at the thrown-away positions.
    func packGradient(_ dy: UnsafePointer<Float>, into g: UnsafeMutablePointer<Float>) {
        g.update(repeating: 0, count: cout * length)
        for b in 0..<n {
            for c in 0..<cout {
                let src = dy + (b &* cout &+ c) &* h &* w
                let at: Int = c &* length &+ b &* plane
                let dst = g + at
                for yy in 0..<h { (dst + yy &* wp).update(from: src + yy &* w, count: w) }
            }
        }
    }

    /// dW_tap[Cout × Cin] = G · P_tapᵀ into `dr` (taps × Cout × Cin).
    func weightGradient(packed p: UnsafePointer<Float>, gradient g: UnsafePointer<Float>, into dr: UnsafeMutablePointer<Float>) {
        for t in 0..<taps {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(cout), Int32(cin), Int32(length),
                        1, g, Int32(length), p + offset(t), Int32(stride), 0, dr + t &* cout &* cin, Int32(cin))
        }
    }

    /// Adds the taps' gradients back into the [Cout, Cin, k, k] layout.
    func accumulateWeightGradient(_ dr: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>) {
        let kk = taps
        for o in 0..<cout {
            for i in 0..<cin {
                let dst = dw + (o &* cin &+ i) &* kk
                for t in 0..<kk { dst[t] += dr[(t &* cout &+ o) &* cin &+ i] }
            }
        }
    }

    /// dP[Cin × ·] = Σ_tap (shifted) W_tapᵀ · G, then dx (NCHW) ← its interior.
    func inputGradient(weights r: UnsafePointer<Float>, gradient g: UnsafePointer<Float>,
                       scratch dp: UnsafeMutablePointer<Float>, into dx: UnsafeMutablePointer<Float>) {
        dp.update(repeating: 0, count: cin * stride)
        for t in 0..<taps {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(cin), Int32(length), Int32(cout),
                        1, r + t &* cout &* cin, Int32(cin), g, Int32(length), 1, dp + offset(t), Int32(stride))
        }
        for c in 0..<cin {
            for b in 0..<n {
                let at: Int = c &* stride &+ b &* plane &+ pad &* wp &+ pad
                let src = dp + at
                let dst = dx + (b &* cin &+ c) &* h &* w
                for y in 0..<h { (dst + y &* w).update(from: src + y &* wp, count: w) }
            }
        }
    }
}
