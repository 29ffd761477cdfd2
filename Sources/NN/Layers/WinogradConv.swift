import CBLAS

/// A 3×3, stride-1, padding-1 convolution by Winograd's minimal filtering F(2×2, 3×3)
/// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
///
/// Each 2×2 output tile is Aᵀ[Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)]A over the 4×4 input patch d around it, so
/// with the 16 transformed positions ξ laid out as separate matrices the channel sums become
/// 16 GEMMs  M[ξ][Cout × T] = U[ξ][Cout × Cin] · V[ξ][Cin × T]  over the T tiles: 16·T·Cin·Cout
/// multiply-adds where direct convolution needs 9·4T·Cin·Cout, 2.25× fewer. Backward runs the
/// adjoints through the same transforms: dM = A dY Aᵀ, dU[ξ] = dM[ξ]·V[ξ]ᵀ (then dg = Gᵀ dU G),
/// dV[ξ] = U[ξ]ᵀ·dM[ξ] (then dd = B dV Bᵀ added back into the overlapping input patches).
///
/// Images are processed in chunks of at least `minimumTiles` tiles, which bounds the transformed
/// buffers (V is 4× its input chunk, M 4× its output chunk) without starving the GEMMs.
struct WinogradConv {
    let cin: Int, cout: Int
    let n: Int, h: Int, w: Int

    static let minimumTiles = 1024

    static func applies(kernel: Int, stride: Int, padding: Int) -> Bool {
        kernel == 3 && stride == 1 && padding == 1
    }

    /// Tile rows and columns of one image, and tiles per image.
    var th: Int { (h + 1) / 2 }
    var tw: Int { (w + 1) / 2 }
    var tilesPerImage: Int { th * tw }
    var imagesPerChunk: Int { min(n, max(1, (Self.minimumTiles + tilesPerImage - 1) / tilesPerImage)) }
    var maxTiles: Int { imagesPerChunk * tilesPerImage }
    /// The padded plane every input patch reads from: one zero row/column before, enough after.
    var ph: Int { 2 * th + 2 }
    var pw: Int { 2 * tw + 2 }

    var chunks: [Range<Int>] {
        stride(from: 0, to: n, by: imagesPerChunk).map { $0..<min($0 + imagesPerChunk, n) }
    }

    /// Elements from one ξ matrix to the next: a little more than `count`, because matrices whose
    /// size is a multiple of 4 KB would put all 16 streams of a transform into the same cache sets.
    static func slab(_ count: Int) -> Int { count + 16 }

    // Workspace slots: 0 V (and dV), 1 M (and dM), 2 U, 3 dU, 8… one padded plane per worker.
    func buffers(_ ws: Workspace) -> (v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
                                      u: UnsafeMutablePointer<Float>, planes: [UnsafeMutablePointer<Float>]) {
        (ws.buffer(16 * Self.slab(cin * maxTiles), slot: 0), ws.buffer(16 * Self.slab(cout * maxTiles), slot: 1),
         ws.buffer(16 * Self.slab(cout * cin), slot: 2), (0..<Parallel.workers).map { ws.buffer(ph * pw, slot: 8 + $0) })
    }

    /// y = conv(x) (+ bias), NCHW.
    func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 into y: UnsafeMutablePointer<Float>, workspace ws: Workspace) {
        let (v, m, u, planes) = buffers(ws)
        Parallel.forEach(cout * cin, grain: 256) { range, _ in transformWeights(weight, range, into: u) }
        let us = Self.slab(cout &* cin)
        for images in chunks {
            let t = images.count * tilesPerImage, vs = Self.slab(cin &* t), ms = Self.slab(cout &* t)
            Parallel.forEach(cin) { c, w in transformInput(x, images: images, channels: c, into: v, plane: planes[w]) }
            gemmBatch(16) { xi in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(t), Int32(cin),
                            1, u + xi &* us, Int32(cin), v + xi &* vs, Int32(t), 0, m + xi &* ms, Int32(t))
            }
            Parallel.forEach(cout) { o, w in transformOutput(m, images: images, channels: o, bias: bias, into: y, plane: planes[w]) }
        }
    }

    /// dW += conv-weight-gradient(x, dy); dx = conv-input-gradient(dy) when `dx` is given.
    func backward(_ x: UnsafePointer<Float>, dy: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                  weightGradient dw: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?, workspace ws: Workspace) {
        let (v, dm, u, planes) = buffers(ws)
        let du = ws.buffer(16 * Self.slab(cout * cin), slot: 3)
        let us = Self.slab(cout &* cin)
        if dx != nil { Parallel.forEach(cout * cin, grain: 256) { range, _ in transformWeights(weight, range, into: u) } }
        for (k, images) in chunks.enumerated() {
            let t = images.count * tilesPerImage, vs = Self.slab(cin &* t), ms = Self.slab(cout &* t)
            Parallel.forEach(cin) { c, w in transformInput(x, images: images, channels: c, into: v, plane: planes[w]) }
            Parallel.forEach(cout) { o, w in transformOutputGradient(dy, images: images, channels: o, into: dm, plane: planes[w]) }
            gemmBatch(16) { xi in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(cout), Int32(cin), Int32(t),
                            1, dm + xi &* ms, Int32(t), v + xi &* vs, Int32(t), k == 0 ? 0 : 1, du + xi &* us, Int32(cin))
            }
            guard let dx else { continue }
            // V is spent: dV takes its place.
            gemmBatch(16) { xi in
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(cin), Int32(t), Int32(cout),
                            1, u + xi &* us, Int32(cin), dm + xi &* ms, Int32(t), 0, v + xi &* vs, Int32(t))
            }
            Parallel.forEach(cin) { c, w in transformInputGradient(v, images: images, channels: c, into: dx, plane: planes[w]) }
        }
        Parallel.forEach(cout * cin, grain: 256) { range, _ in accumulateWeightGradient(du, range, into: dw) }
    }

    /// (a, (a + b + c)/2, (a − b + c)/2, c): G applied to one column (or row) of a 3×3 kernel.
    @inline(__always) static func g(_ a: Float, _ b: Float, _ c: Float) -> (Float, Float, Float, Float) {
        (a, 0.5 * (a + b + c), 0.5 * (a - b + c), c)
    }

    /// (d0 + (d1 + d2)/2, (d1 − d2)/2, (d1 + d2)/2 + d3): Gᵀ applied to four values, G's adjoint.
    @inline(__always) static func gT(_ d0: Float, _ d1: Float, _ d2: Float, _ d3: Float) -> (Float, Float, Float) {
        let s = 0.5 * (d1 + d2)
        return (d0 + s, 0.5 * (d1 - d2), s + d3)
    }

    /// U[ξ][o][c] = (G g Gᵀ)[ξ] for each 3×3 kernel g = weight[o][c].
    func transformWeights(_ wt: UnsafePointer<Float>, _ kernels: Range<Int>, into u: UnsafeMutablePointer<Float>) {
        let plane = Self.slab(cout &* cin)
        for at in kernels {
            let k = wt + at &* 9
            // G on the columns of g gives rows t_r (4 × 3), then G on each row.
            let c0 = Self.g(k[0], k[3], k[6]), c1 = Self.g(k[1], k[4], k[7]), c2 = Self.g(k[2], k[5], k[8])
            let o = u + at
            Self.store(Self.g(c0.0, c1.0, c2.0), o, plane)
            Self.store(Self.g(c0.1, c1.1, c2.1), o + 4 &* plane, plane)
            Self.store(Self.g(c0.2, c1.2, c2.2), o + 8 &* plane, plane)
            Self.store(Self.g(c0.3, c1.3, c2.3), o + 12 &* plane, plane)
        }
    }

    @inline(__always) static func store(_ v: (Float, Float, Float, Float), _ p: UnsafeMutablePointer<Float>, _ stride: Int) {
        p[0] = v.0; p[stride] = v.1; p[2 &* stride] = v.2; p[3 &* stride] = v.3
    }

    /// dW[o][c] += Gᵀ dU[·][o][c] G, the adjoint of `transformWeights`.
    func accumulateWeightGradient(_ du: UnsafePointer<Float>, _ kernels: Range<Int>, into dw: UnsafeMutablePointer<Float>) {
        let plane = Self.slab(cout &* cin)
        for at in kernels {
            // Gᵀ on each row of dU (4 × 4 → 4 × 3), then on each of the 3 columns.
            let d = du + at
            let q0 = Self.gT(d[0], d[plane], d[2 &* plane], d[3 &* plane])
            let q1 = Self.gT(d[4 &* plane], d[5 &* plane], d[6 &* plane], d[7 &* plane])
            let q2 = Self.gT(d[8 &* plane], d[9 &* plane], d[10 &* plane], d[11 &* plane])
            let q3 = Self.gT(d[12 &* plane], d[13 &* plane], d[14 &* plane], d[15 &* plane])
            let k = dw + at &* 9
            let a = Self.gT(q0.0, q1.0, q2.0, q3.0)
            let b = Self.gT(q0.1, q1.1, q2.1, q3.1)
            let c = Self.gT(q0.2, q1.2, q2.2, q3.2)
            k[0] += a.0; k[3] += a.1; k[6] += a.2
            k[1] += b.0; k[4] += b.1; k[7] += b.2
            k[2] += c.0; k[5] += c.1; k[8] += c.2
        }
    }

    /// Copies one h × w plane into the padded plane at row/column offset `at` (1 for inputs, whose
    /// patches start one pixel before their tile; 0 for output gradients), zeros elsewhere.
    private func pad(_ src: UnsafePointer<Float>, at: Int, into plane: UnsafeMutablePointer<Float>) {
        plane.update(repeating: 0, count: ph &* pw)
        for y in 0..<h { (plane + ((y &+ at) &* pw &+ at)).update(from: src + y &* w, count: w) }
    }

    /// V[ξ][c][t] = (Bᵀ d B)[ξ] for the 4×4 input patch d of every tile t of the chunk.
    func transformInput(_ x: UnsafePointer<Float>, images: Range<Int>, channels: Range<Int>,
                        into v: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>) {
        let t = images.count &* tilesPerImage, xiStride = Self.slab(cin &* t), tw = self.tw
        for c in channels {
            for b in images {
                pad(x + (b &* cin &+ c) &* h &* w, at: 1, into: plane)
                let base = v + (c &* t &+ (b &- images.lowerBound) &* tilesPerImage)
                for i in 0..<th {
                    let r0 = UnsafePointer(plane + 2 &* i &* pw), r1 = r0 + pw, r2 = r1 + pw, r3 = r2 + pw
                    let out = base + i &* tw
                    for j in 0..<tw {
                        let x0 = 2 &* j
                        // Bᵀ on the rows, then on the columns: e_r = (d_r0 − d_r2, d_r1 + d_r2, d_r2 − d_r1, d_r1 − d_r3).
                        let a0 = r0[x0] - r2[x0], a1 = r0[x0 &+ 1] - r2[x0 &+ 1], a2 = r0[x0 &+ 2] - r2[x0 &+ 2], a3 = r0[x0 &+ 3] - r2[x0 &+ 3]
                        let b0 = r1[x0] + r2[x0], b1 = r1[x0 &+ 1] + r2[x0 &+ 1], b2 = r1[x0 &+ 2] + r2[x0 &+ 2], b3 = r1[x0 &+ 3] + r2[x0 &+ 3]
                        let c0 = r2[x0] - r1[x0], c1 = r2[x0 &+ 1] - r1[x0 &+ 1], c2 = r2[x0 &+ 2] - r1[x0 &+ 2], c3 = r2[x0 &+ 3] - r1[x0 &+ 3]
                        let d0 = r1[x0] - r3[x0], d1 = r1[x0 &+ 1] - r3[x0 &+ 1], d2 = r1[x0 &+ 2] - r3[x0 &+ 2], d3 = r1[x0 &+ 3] - r3[x0 &+ 3]
                        let o = out + j
                        o[0] = a0 - a2; o[xiStride] = a1 + a2; o[2 &* xiStride] = a2 - a1; o[3 &* xiStride] = a1 - a3
                        o[4 &* xiStride] = b0 - b2; o[5 &* xiStride] = b1 + b2; o[6 &* xiStride] = b2 - b1; o[7 &* xiStride] = b1 - b3
                        o[8 &* xiStride] = c0 - c2; o[9 &* xiStride] = c1 + c2; o[10 &* xiStride] = c2 - c1; o[11 &* xiStride] = c1 - c3
                        o[12 &* xiStride] = d0 - d2; o[13 &* xiStride] = d1 + d2; o[14 &* xiStride] = d2 - d1; o[15 &* xiStride] = d1 - d3
                    }
                }
            }
        }
    }

    /// y tiles = Aᵀ M A (+ bias) for every tile of the chunk.
    func transformOutput(_ m: UnsafePointer<Float>, images: Range<Int>, channels: Range<Int>, bias: UnsafePointer<Float>?,
                         into y: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>) {
        let t = images.count &* tilesPerImage, xiStride = Self.slab(cout &* t), tw = self.tw
        let direct = h % 2 == 0 && w % 2 == 0
        let ow = direct ? w : pw
        for o in channels {
            let bo = bias?[o] ?? 0
            for b in images {
                let dst = y + (b &* cout &+ o) &* h &* w
                let target = direct ? dst : plane
                let base = m + (o &* t &+ (b &- images.lowerBound) &* tilesPerImage)
                for i in 0..<th {
                    let row0 = target + 2 &* i &* ow, row1 = row0 + ow
                    let s = base + i &* tw
                    for j in 0..<tw {
                        let p = s + j
                        let m0 = p[0], m1 = p[xiStride], m2 = p[2 &* xiStride], m3 = p[3 &* xiStride]
                        let m4 = p[4 &* xiStride], m5 = p[5 &* xiStride], m6 = p[6 &* xiStride], m7 = p[7 &* xiStride]
                        let m8 = p[8 &* xiStride], m9 = p[9 &* xiStride], m10 = p[10 &* xiStride], m11 = p[11 &* xiStride]
                        let m12 = p[12 &* xiStride], m13 = p[13 &* xiStride], m14 = p[14 &* xiStride], m15 = p[15 &* xiStride]
                        // Aᵀ on the rows: s0 = row0 + row1 + row2, s1 = row1 − row2 − row3.
                        let s00 = m0 + m4 + m8, s01 = m1 + m5 + m9, s02 = m2 + m6 + m10, s03 = m3 + m7 + m11
                        let s10 = m4 - m8 - m12, s11 = m5 - m9 - m13, s12 = m6 - m10 - m14, s13 = m7 - m11 - m15
                        row0[2 &* j] = s00 + s01 + s02 + bo
                        row0[2 &* j &+ 1] = s01 - s02 - s03 + bo
                        row1[2 &* j] = s10 + s11 + s12 + bo
                        row1[2 &* j &+ 1] = s11 - s12 - s13 + bo
                    }
                }
                if !direct {
                    for yy in 0..<h { (dst + yy &* w).update(from: plane + yy &* pw, count: w) }
                }
            }
        }
    }

    /// dM[ξ][o][t] = (A dY Aᵀ)[ξ] for the 2×2 output-gradient tile (zero past the image).
    func transformOutputGradient(_ dy: UnsafePointer<Float>, images: Range<Int>, channels: Range<Int>,
                                 into dm: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>) {
        let t = images.count &* tilesPerImage, xiStride = Self.slab(cout &* t), tw = self.tw
        let direct = h % 2 == 0 && w % 2 == 0
        let iw = direct ? w : pw
        for o in channels {
            for b in images {
                let src = dy + (b &* cout &+ o) &* h &* w
                if !direct { pad(src, at: 0, into: plane) }
                let from = direct ? src : UnsafePointer(plane)
                let base = dm + (o &* t &+ (b &- images.lowerBound) &* tilesPerImage)
                for i in 0..<th {
                    let row0 = from + 2 &* i &* iw, row1 = row0 + iw
                    let out = base + i &* tw
                    for j in 0..<tw {
                        let y00 = row0[2 &* j], y01 = row0[2 &* j &+ 1], y10 = row1[2 &* j], y11 = row1[2 &* j &+ 1]
                        // A on the columns: z_a = (y_a0, y_a0 + y_a1, y_a0 − y_a1, −y_a1), then on the rows.
                        let z00 = y00, z01 = y00 + y01, z02 = y00 - y01, z03 = -y01
                        let z10 = y10, z11 = y10 + y11, z12 = y10 - y11, z13 = -y11
                        let p = out + j
                        p[0] = z00; p[xiStride] = z01; p[2 &* xiStride] = z02; p[3 &* xiStride] = z03
                        p[4 &* xiStride] = z00 + z10; p[5 &* xiStride] = z01 + z11
                        p[6 &* xiStride] = z02 + z12; p[7 &* xiStride] = z03 + z13
                        p[8 &* xiStride] = z00 - z10; p[9 &* xiStride] = z01 - z11
                        p[10 &* xiStride] = z02 - z12; p[11 &* xiStride] = z03 - z13
                        p[12 &* xiStride] = -z10; p[13 &* xiStride] = -z11; p[14 &* xiStride] = -z12; p[15 &* xiStride] = -z13
                    }
                }
            }
        }
    }

    /// The four values at `p`, `p + stride`, … times Bᵀ on the right: one row of dV B's adjoint.
    @inline(__always) static func bT(_ p: UnsafePointer<Float>, _ stride: Int) -> (Float, Float, Float, Float) {
        let v0 = p[0], v1 = p[stride], v2 = p[2 &* stride], v3 = p[3 &* stride]
        return (v0, v1 - v2 + v3, v1 + v2 - v0, -v3)
    }

    /// dx = Σ over tiles of B dV Bᵀ added into each tile's 4×4 input patch (patches overlap).
    func transformInputGradient(_ dv: UnsafePointer<Float>, images: Range<Int>, channels: Range<Int>,
                                into dx: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>) {
        let t = images.count &* tilesPerImage, xiStride = Self.slab(cin &* t), tw = self.tw
        for c in channels {
            for b in images {
                plane.update(repeating: 0, count: ph &* pw)
                let base = dv + (c &* t &+ (b &- images.lowerBound) &* tilesPerImage)
                for i in 0..<th {
                    let r0 = plane + 2 &* i &* pw, r1 = r0 + pw, r2 = r1 + pw, r3 = r2 + pw
                    let s = base + i &* tw
                    for j in 0..<tw {
                        let p = s + j
                        // Columns first: w_a = (v_a0, v_a1 − v_a2 + v_a3, v_a1 + v_a2 − v_a0, −v_a3) per row a.
                        let w0 = Self.bT(p, xiStride), w1 = Self.bT(p + 4 &* xiStride, xiStride)
                        let w2 = Self.bT(p + 8 &* xiStride, xiStride), w3 = Self.bT(p + 12 &* xiStride, xiStride)
                        // Then rows: dd_0 = w_0, dd_1 = w_1 − w_2 + w_3, dd_2 = w_1 + w_2 − w_0, dd_3 = −w_3.
                        let x0 = 2 &* j
                        r0[x0] += w0.0; r0[x0 &+ 1] += w0.1; r0[x0 &+ 2] += w0.2; r0[x0 &+ 3] += w0.3
                        r1[x0] += w1.0 - w2.0 + w3.0; r1[x0 &+ 1] += w1.1 - w2.1 + w3.1
                        r1[x0 &+ 2] += w1.2 - w2.2 + w3.2; r1[x0 &+ 3] += w1.3 - w2.3 + w3.3
                        r2[x0] += w1.0 + w2.0 - w0.0; r2[x0 &+ 1] += w1.1 + w2.1 - w0.1
                        r2[x0 &+ 2] += w1.2 + w2.2 - w0.2; r2[x0 &+ 3] += w1.3 + w2.3 - w0.3
                        r3[x0] -= w3.0; r3[x0 &+ 1] -= w3.1; r3[x0 &+ 2] -= w3.2; r3[x0 &+ 3] -= w3.3
                    }
                }
                let dst = dx + (b &* cin &+ c) &* h &* w
                for y in 0..<h { (dst + y &* w).update(from: plane + ((y &+ 1) &* pw &+ 1), count: w) }
            }
        }
    }
}
