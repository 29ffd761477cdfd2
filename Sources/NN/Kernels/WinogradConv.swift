
/// A 3×3, stride-1, padding-1 convolution by Winograd's minimal filtering F(2×2, 3×3)
/// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
///
/// Each 2×2 output tile is Aᵀ[Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)]A over the 4×4 input patch d around it, so
/// with the 16 transformed positions ξ laid out as separate matrices the channel sums become
/// 16 GEMMs  M[ξ][Cout × T] = U[ξ][Cout × Cin] · V[ξ][Cin × T]  over the T tiles: 16·T·Cin·Cout
/// multiply-adds where direct convolution needs 9·4T·Cin·Cout, 2.25× fewer. Backward runs the
/// adjoints through the same transforms: dM = A dY Aᵀ, dU[ξ] = dM[ξ]·V[ξ]ᵀ (then dg = Gᵀ dU G),
/// dV[ξ] = U[ξ]ᵀ·dM[ξ] (then dd = B dV Bᵀ added back into the overlapping input patches).
/// Layout, passes and the forward pass are `WinogradTiling`'s; V is 4× its input pass, M 4×
/// its output pass.
struct WinogradConv: WinogradTiling {
    let cin: Int, cout: Int
    let n: Int, h: Int, w: Int
    let precision: Precision

    static let tile = 2
    static let passTiles = 1024

    static func applies(kernel: Int, stride: Int, padding: Int) -> Bool {
        kernel == 3 && stride == 1 && padding == 1
    }

    /// dW += conv-weight-gradient(x, dy) when `dw` is given; dx = conv-input-gradient(dy) when `dx` is.
    func backward(_ x: UnsafePointer<Float>, dy: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                  weightGradient dw: UnsafeMutablePointer<Float>?, dx: UnsafeMutablePointer<Float>?, workspace ws: Workspace) {
        // Pass by pass as the forward goes (bands of tile rows of a large image), so that dM and dV
        // stay in cache between their transforms and the GEMMs. Workers take whole images only
        // for the input gradient alone: the weight gradient (which comes here only for images under
        // 16×16) sums every pass into one dU.
        let passes = self.passes, planes = self.planes(ws)
        let perImage = dw == nil && workersTakeImages ? byImage(passes) : nil, groups = perImage ?? passes.map { [$0] }
        let du = dw.map { _ in ws.buffer(Self.positions * Self.slab(cout * cin), .transformedWeightGradient) }
        let us = Self.slab(cout &* cin)
        let u = dx.map { _ in transformedWeights(ws) }
        if let u { Parallel.forEach(cout * cin, grain: 256) { range, _ in transformWeights(weight, range, into: u) } }
        forEachUnit(groups.count, own: perImage != nil, tiles: passes.map(tiles(in:)).max()!, workspace: ws) { group, spread, v, dm in
            for pass in groups[group] {
                let (images, rows) = pass, t = tiles(in: pass), vs = Self.slab(cin &* t), ms = Self.slab(cout &* t)
                spread.forEach(cout) { o, w in transformOutputGradient(dy, images: images, rows: rows, channels: o, into: dm, plane: planes[w]) }
                if let du {
                    // Without own images each group is one pass, in order: the first one sets dU.
                    spread.forEach(cin) { c, w in transformInput(x, images: images, rows: rows, channels: c, into: v, plane: planes[w]) }
                    spread.each(Self.positions) { xi in weightGradientProduct(xi, dm, v, into: du, tiles: t, first: group == 0) }
                }
                guard let dx, let u else { continue }
                // V is spent: dV takes its place.
                spread.each(Self.positions) { xi in
                    sgemm(precision, true, false, cin, t, cout, 1, u + xi &* us, cin, dm + xi &* ms, t, 0, v + xi &* vs, t)
                }
                spread.forEach(cin) { c, w in transformInputGradient(v, images: images, rows: rows, channels: c, into: dx, plane: planes[w]) }
            }
        }
        if let dw, let du { Parallel.forEach(cout * cin, grain: 256) { range, _ in accumulateWeightGradient(du, range, into: dw) } }
    }

    /// (d0 + (d1 + d2)/2, (d1 − d2)/2, (d1 + d2)/2 + d3): Gᵀ applied to four values, G's adjoint.
    @inline(__always) static func gT(_ d0: Float, _ d1: Float, _ d2: Float, _ d3: Float) -> (Float, Float, Float) {
        let s = 0.5 * (d1 + d2)
        return (d0 + s, 0.5 * (d1 - d2), s + d3)
    }

    /// U[ξ][o][c] = (G g Gᵀ)[ξ] for each 3×3 kernel g = weight[o][c], four kernels at a time.
    func transformWeights(_ wt: UnsafePointer<Float>, _ kernels: Range<Int>, into u: UnsafeMutablePointer<Float>) {
        let plane = Self.slab(cout &* cin)
        for at in stride(from: kernels.lowerBound, to: kernels.upperBound, by: 4) {
            let lanes = min(4, kernels.upperBound &- at)
            let k = kernelTaps(wt, at, lanes)
            // G on the columns of g gives rows t_r (4 × 3), then G on each row.
            let c0 = Self.g(k.0, k.3, k.6), c1 = Self.g(k.1, k.4, k.7), c2 = Self.g(k.2, k.5, k.8)
            func put(_ row: (V4, V4, V4, V4), _ r: Int) {
                let o = u + ((4 &* r) &* plane &+ at)
                store(row.0, o, lanes: lanes); store(row.1, o + plane, lanes: lanes)
                store(row.2, o + 2 &* plane, lanes: lanes); store(row.3, o + 3 &* plane, lanes: lanes)
            }
            put(Self.g(c0.0, c1.0, c2.0), 0); put(Self.g(c0.1, c1.1, c2.1), 1)
            put(Self.g(c0.2, c1.2, c2.2), 2); put(Self.g(c0.3, c1.3, c2.3), 3)
        }
    }

    /// (a, (a + b + c)/2, (a − b + c)/2, c): G applied to one column (or row) of four 3×3 kernels.
    @inline(__always) static func g(_ a: V4, _ b: V4, _ c: V4) -> (V4, V4, V4, V4) {
        (a, 0.5 * (a + b + c), 0.5 * (a - b + c), c)
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

    /// V[ξ][c][t] = (Bᵀ d B)[ξ] for the 4×4 input patch d of every tile t of the pass.
    func transformInput(_ x: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>, channels: Range<Int>,
                        into v: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>) {
        let perImage = rows.count &* tw, t = images.count &* perImage, xs = Self.slab(cin &* t), tw = self.tw, half = phase
        for c in channels {
            for b in images {
                split(x + (b &* cin &+ c) &* h &* w, at: 1, rows: patchRows(rows), into: plane)
                let base = v + (c &* t &+ (b &- images.lowerBound) &* perImage &- rows.lowerBound &* tw)
                for i in rows {
                    let e0 = UnsafePointer(plane + 2 &* i &* pw), e1 = e0 + pw, e2 = e1 + pw, e3 = e2 + pw
                    let out = base + i &* tw
                    for j in stride(from: 0, to: tw, by: 4) {
                        // Bᵀ on the rows: a = d0 − d2, b = d1 + d2, c = d2 − d1, d = d1 − d3, per patch column k.
                        let d00 = load4(e0 + j), d01 = load4(e0 + (j &+ half)), d02 = load4(e0 + (j &+ 1)), d03 = load4(e0 + (j &+ half &+ 1))
                        let d10 = load4(e1 + j), d11 = load4(e1 + (j &+ half)), d12 = load4(e1 + (j &+ 1)), d13 = load4(e1 + (j &+ half &+ 1))
                        let d20 = load4(e2 + j), d21 = load4(e2 + (j &+ half)), d22 = load4(e2 + (j &+ 1)), d23 = load4(e2 + (j &+ half &+ 1))
                        let d30 = load4(e3 + j), d31 = load4(e3 + (j &+ half)), d32 = load4(e3 + (j &+ 1)), d33 = load4(e3 + (j &+ half &+ 1))
                        let o = out + j
                        Self.bTRow(d00 - d20, d01 - d21, d02 - d22, d03 - d23, o, xs)
                        Self.bTRow(d10 + d20, d11 + d21, d12 + d22, d13 + d23, o + 4 &* xs, xs)
                        Self.bTRow(d20 - d10, d21 - d11, d22 - d12, d23 - d13, o + 8 &* xs, xs)
                        Self.bTRow(d10 - d30, d11 - d31, d12 - d32, d13 - d33, o + 12 &* xs, xs)
                    }
                }
            }
        }
    }

    /// Bᵀ on the columns of one row (a0, a1, a2, a3) of four tiles, stored at ξ = 4r…4r + 3.
    @inline(__always) static func bTRow(_ a0: SIMD4<Float>, _ a1: SIMD4<Float>, _ a2: SIMD4<Float>, _ a3: SIMD4<Float>,
                                        _ o: UnsafeMutablePointer<Float>, _ xs: Int) {
        store4(a0 - a2, o)
        store4(a1 + a2, o + xs)
        store4(a2 - a1, o + 2 &* xs)
        store4(a1 - a3, o + 3 &* xs)
    }

    /// y tiles = Aᵀ M A (+ bias) for every tile of the pass.
    func transformOutput(_ m: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>, channels: Range<Int>,
                         bias: UnsafePointer<Float>?, epilogue: Epilogue?, into y: UnsafeMutablePointer<Float>,
                         plane: UnsafeMutablePointer<Float>) {
        let perImage = rows.count &* tw, t = images.count &* perImage, xs = Self.slab(cout &* t), tw = self.tw, exact = self.exact
        // Rows of 2·tw outputs, straight into y or into the scratch plane.
        let ow = 2 &* tw, pixels = outputPixels(rows)
        for o in channels {
            let bo = SIMD4<Float>(repeating: bias?[o] ?? 0)
            for b in images {
                let dst = y + (b &* cout &+ o) &* h &* w
                let target = exact ? dst : plane
                let base = m + (o &* t &+ (b &- images.lowerBound) &* perImage &- rows.lowerBound &* tw)
                for i in rows {
                    let row0 = target + 2 &* i &* ow, row1 = row0 + ow
                    for j in stride(from: 0, to: tw, by: 4) {
                        let p = UnsafePointer(base + (i &* tw &+ j))
                        // Aᵀ on the rows: s0 = m0 + m1 + m2, s1 = m1 − m2 − m3 (rows of M), per column k.
                        var s0 = (SIMD4<Float>.zero, SIMD4<Float>.zero, SIMD4<Float>.zero, SIMD4<Float>.zero)
                        var s1 = s0
                        s0.0 = load4(p) + load4(p + 4 &* xs) + load4(p + 8 &* xs)
                        s0.1 = load4(p + xs) + load4(p + 5 &* xs) + load4(p + 9 &* xs)
                        s0.2 = load4(p + 2 &* xs) + load4(p + 6 &* xs) + load4(p + 10 &* xs)
                        s0.3 = load4(p + 3 &* xs) + load4(p + 7 &* xs) + load4(p + 11 &* xs)
                        s1.0 = load4(p + 4 &* xs) - load4(p + 8 &* xs) - load4(p + 12 &* xs)
                        s1.1 = load4(p + 5 &* xs) - load4(p + 9 &* xs) - load4(p + 13 &* xs)
                        s1.2 = load4(p + 6 &* xs) - load4(p + 10 &* xs) - load4(p + 14 &* xs)
                        s1.3 = load4(p + 7 &* xs) - load4(p + 11 &* xs) - load4(p + 15 &* xs)
                        // Then on the columns: y_a0 = s_a0 + s_a1 + s_a2, y_a1 = s_a1 − s_a2 − s_a3.
                        storeInterleaved(s0.0 + s0.1 + s0.2 + bo, s0.1 - s0.2 - s0.3 + bo, row0 + 2 &* j)
                        storeInterleaved(s1.0 + s1.1 + s1.2 + bo, s1.1 - s1.2 - s1.3 + bo, row1 + 2 &* j)
                    }
                }
                if !exact {
                    for yy in pixels.lowerBound / w..<pixels.upperBound / w { (dst + yy &* w).update(from: plane + yy &* ow, count: w) }
                }
                epilogue?.apply(y, plane: b &* cout &+ o, channels: cout, pixels: pixels, planeSize: h &* w)
            }
        }
    }

    /// dM[ξ][o][t] = (A dY Aᵀ)[ξ] for the 2×2 output-gradient tiles (zero past the image) in tile
    /// rows `rows` of the images `images`.
    func transformOutputGradient(_ dy: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>, channels: Range<Int>,
                                 into dm: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>) {
        let perImage = rows.count &* tw, t = images.count &* perImage, xs = Self.slab(cout &* t), tw = self.tw
        let exact = self.exact, half = phase
        for o in channels {
            for b in images {
                let src = dy + (b &* cout &+ o) &* h &* w
                if !exact { split(src, at: 0, rows: 2 &* rows.lowerBound..<2 &* rows.upperBound, into: plane) }
                let base = dm + (o &* t &+ (b &- images.lowerBound) &* perImage &- rows.lowerBound &* tw)
                for i in rows {
                    let out = base + i &* tw
                    for j in stride(from: 0, to: tw, by: 4) {
                        let y00: SIMD4<Float>, y01: SIMD4<Float>, y10: SIMD4<Float>, y11: SIMD4<Float>
                        if exact {
                            (y00, y01) = loadDeinterleaved(src + (2 &* i &* w &+ 2 &* j))
                            (y10, y11) = loadDeinterleaved(src + ((2 &* i &+ 1) &* w &+ 2 &* j))
                        } else {
                            let r0 = UnsafePointer(plane + 2 &* i &* pw), r1 = r0 + pw
                            (y00, y01, y10, y11) = (load4(r0 + j), load4(r0 + (j &+ half)), load4(r1 + j), load4(r1 + (j &+ half)))
                        }
                        // A on the columns: z_a = (y_a0, y_a0 + y_a1, y_a0 − y_a1, −y_a1), then on the rows:
                        // dM rows (z_0, z_0 + z_1, z_0 − z_1, −z_1).
                        let z00 = y00, z01 = y00 + y01, z02 = y00 - y01, z03 = -y01
                        let z10 = y10, z11 = y10 + y11, z12 = y10 - y11, z13 = -y11
                        let p = out + j
                        store4(z00, p); store4(z01, p + xs); store4(z02, p + 2 &* xs); store4(z03, p + 3 &* xs)
                        store4(z00 + z10, p + 4 &* xs); store4(z01 + z11, p + 5 &* xs)
                        store4(z02 + z12, p + 6 &* xs); store4(z03 + z13, p + 7 &* xs)
                        store4(z00 - z10, p + 8 &* xs); store4(z01 - z11, p + 9 &* xs)
                        store4(z02 - z12, p + 10 &* xs); store4(z03 - z13, p + 11 &* xs)
                        store4(-z10, p + 12 &* xs); store4(-z11, p + 13 &* xs); store4(-z12, p + 14 &* xs); store4(-z13, p + 15 &* xs)
                    }
                }
            }
        }
    }

    /// Row a of dV B's adjoint for four tiles: (v0, v1 − v2 + v3, v1 + v2 − v0, −v3) of the values at ξ = 4a…4a + 3.
    @inline(__always) static func bT(_ p: UnsafePointer<Float>, _ xs: Int) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
        let v0 = load4(p), v1 = load4(p + xs), v2 = load4(p + 2 &* xs), v3 = load4(p + 3 &* xs)
        return (v0, v1 - v2 + v3, v1 + v2 - v0, -v3)
    }

    /// dx = Σ over tiles of B dV Bᵀ added into each tile's 4×4 input patch (patches overlap), for
    /// the tiles in tile rows `rows` of the images `images`. A band after the first adds its top two
    /// patch rows to what the band before wrote there; the others it writes.
    func transformInputGradient(_ dv: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>, channels: Range<Int>,
                                into dx: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>) {
        let perImage = rows.count &* tw, t = images.count &* perImage, xs = Self.slab(cin &* t), tw = self.tw, half = phase
        let patch = patchRows(rows), added = rows.lowerBound > 0 ? patch.lowerBound &+ 1 : 0
        for c in channels {
            for b in images {
                (plane + patch.lowerBound &* pw).update(repeating: 0, count: patch.count &* pw)
                let base = dv + (c &* t &+ (b &- images.lowerBound) &* perImage &- rows.lowerBound &* tw)
                for i in rows {
                    let e0 = plane + 2 &* i &* pw, e1 = e0 + pw, e2 = e1 + pw, e3 = e2 + pw
                    for j in stride(from: 0, to: tw, by: 4) {
                        let p = UnsafePointer(base + (i &* tw &+ j))
                        // Columns first (w_a per row a of dV), then rows: dd_0 = w_0, dd_1 = w_1 − w_2 + w_3,
                        // dd_2 = w_1 + w_2 − w_0, dd_3 = −w_3; dd_r's columns go to even[j], odd[j], even[j+1], odd[j+1].
                        let w0 = Self.bT(p, xs), w1 = Self.bT(p + 4 &* xs, xs)
                        let w2 = Self.bT(p + 8 &* xs, xs), w3 = Self.bT(p + 12 &* xs, xs)
                        Self.addPatchRow(w0.0, w0.1, w0.2, w0.3, e0 + j, half)
                        Self.addPatchRow(w1.0 - w2.0 + w3.0, w1.1 - w2.1 + w3.1, w1.2 - w2.2 + w3.2, w1.3 - w2.3 + w3.3, e1 + j, half)
                        Self.addPatchRow(w1.0 + w2.0 - w0.0, w1.1 + w2.1 - w0.1, w1.2 + w2.2 - w0.2, w1.3 + w2.3 - w0.3, e2 + j, half)
                        Self.addPatchRow(-w3.0, -w3.1, -w3.2, -w3.3, e3 + j, half)
                    }
                }
                let dst = dx + (b &* cin &+ c) &* h &* w
                // Image row y is plane row y + 1.
                for y in max(patch.lowerBound &- 1, 0)..<min(patch.upperBound &- 1, h) {
                    let even = UnsafePointer(plane + (y &+ 1) &* pw), odd = even + half, row = dst + y &* w
                    let adds = y &+ 1 <= added
                    // Column x sits at q = x + 1: even x in odd[x/2], odd x in even[x/2 + 1].
                    var x = 0
                    while x &+ 8 <= w {
                        let m = x >> 1
                        let e = load4(odd + m), o = load4(even + (m &+ 1))
                        var lo = V4(e[0], o[0], e[1], o[1]), hi = V4(e[2], o[2], e[3], o[3])
                        if adds {
                            lo += load4(row + x)
                            hi += load4(row + (x &+ 4))
                        }
                        store4(lo, row + x)
                        store4(hi, row + (x &+ 4))
                        x &+= 8
                    }
                    while x < w {
                        let q = x &+ 1, value = (q & 1 == 0 ? even : odd)[q >> 1]
                        row[x] = adds ? row[x] + value : value
                        x &+= 1
                    }
                }
            }
        }
    }

    /// Adds one patch row of four tiles (columns k = 0…3) into a split plane row at tile j.
    @inline(__always) static func addPatchRow(_ k0: SIMD4<Float>, _ k1: SIMD4<Float>, _ k2: SIMD4<Float>, _ k3: SIMD4<Float>,
                                              _ even: UnsafeMutablePointer<Float>, _ half: Int) {
        let odd = even + half
        store4(load4(even) + k0, even)
        store4(load4(odd) + k1, odd)
        store4(load4(even + 1) + k2, even + 1)
        store4(load4(odd + 1) + k3, odd + 1)
    }
}
