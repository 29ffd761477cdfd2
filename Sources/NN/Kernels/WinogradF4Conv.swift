
/// A 3×3, stride-1, padding-1 convolution by Winograd's F(4×4, 3×3) (Lavin & Gray, 2016;
/// interpolation points 0, ±1, ±2): each 4×4 output tile comes from the 6×6 input patch around it
/// through 36 GEMMs  M[ξ] = U[ξ]·V[ξ]  over the tiles, with U = G g Gᵀ, V = Bᵀ d B, Y = Aᵀ M A:
/// 36 multiplies per 16 outputs where F(2×2, 3×3) needs 64 and direct convolution 144, and
/// transformed buffers 2.25× their images (F(2×2): 4×). The weight gradient runs the adjoints
/// as `WinogradConv` does: dM = A dY Aᵀ, dU[ξ] = dM[ξ]·V[ξ]ᵀ summed over the tiles, dg = Gᵀ dU G.
/// Layout, passes and the forward pass are `WinogradTiling`'s. Images smaller than 16×16 would
/// waste too many tiles on padding; `WinogradConv` takes those.
struct WinogradF4Conv: WinogradTiling {
    let cin: Int, cout: Int
    let n: Int, h: Int, w: Int
    let precision: Precision

    static let tile = 4
    /// Smaller passes keep the 36 transformed matrices in cache (bench/README.md).
    static let passTiles = 256

    static func applies(h: Int, w: Int) -> Bool { h >= 16 && w >= 16 }

    /// dW += conv-weight-gradient(x, dy). (Conv2d takes input gradients from F(2×2): see `Conv2d.winograd`.)
    /// Pass by pass, as the forward goes, so that the transformed input and output gradient stay in
    /// cache between their transforms and the GEMMs (a whole 256² image with 32 channels makes
    /// 19 MB of V). dU sums the passes in order, image by image where passes lie within images
    /// (which lets workers take whole images), and dW adds the images' sums in order: the same
    /// sums however many workers there are.
    func weightGradient(_ x: UnsafePointer<Float>, dy: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>,
                        workspace ws: Workspace) {
        let passes = self.passes, planes = self.planes(ws)
        let perImage = byImage(passes), groups = perImage ?? [passes]
        let size = Self.positions * Self.slab(cout * cin)
        let du = ws.buffer(groups.count * size, .transformedWeightGradient)
        forEachUnit(groups.count, own: perImage != nil && workersTakeImages, tiles: passes.map(tiles(in:)).max()!,
                    workspace: ws) { group, spread, v, dm in
            for (k, pass) in groups[group].enumerated() {
                let (images, rows) = pass, t = tiles(in: pass)
                spread.forEach(cin) { c, w in transformInput(x, images: images, rows: rows, channels: c, into: v, plane: planes[w]) }
                spread.forEach(cout) { o, w in transformOutputGradient(dy, images: images, rows: rows, channels: o, into: dm, plane: planes[w]) }
                spread.each(Self.positions) { xi in weightGradientProduct(xi, dm, v, into: du + group &* size, tiles: t, first: k == 0) }
            }
        }
        Parallel.forEach(cout * cin, grain: 256) { range, _ in
            for group in groups.indices { accumulateWeightGradient(du + group &* size, range, into: dw) }
        }
    }

    // MARK: the 1-D transforms, each on four tiles at once

    typealias Six = (V4, V4, V4, V4, V4, V4)
    typealias Four = (V4, V4, V4, V4)

    /// Bᵀ d for a patch row or column d0…d5.
    @inline(__always) static func bT(_ d: Six) -> Six {
        let (d0, d1, d2, d3, d4, d5) = d
        return (4 * d0 - 5 * d2 + d4,
                d3 + d4 - 4 * (d1 + d2),
                d4 - d3 + 4 * (d1 - d2),
                d4 - d2 + 2 * (d3 - d1),
                d4 - d2 - 2 * (d3 - d1),
                4 * d1 - 5 * d3 + d5)
    }

    /// Aᵀ m: six transformed values to four outputs.
    @inline(__always) static func aT(_ m: Six) -> Four {
        let (m0, m1, m2, m3, m4, m5) = m
        let p = m1 + m2, q = m1 - m2, r = m3 + m4, s = m3 - m4
        return (m0 + p + r, q + 2 * s, p + 4 * r, q + 8 * s + m5)
    }

    /// A y (Aᵀ's adjoint): four output-gradient values to six.
    @inline(__always) static func a(_ y0: V4, _ y1: V4, _ y2: V4, _ y3: V4) -> Six {
        let e = y0 + y2, o = y1 + y3, e4 = y0 + 4 * y2, o8 = 2 * y1 + 8 * y3
        return (y0, e + o, e - o, e4 + o8, e4 - o8, y3)
    }

    /// Gᵀ u (G's adjoint): six transformed kernel values back to three taps.
    @inline(__always) static func gT(_ u: Six) -> (V4, V4, V4) {
        let (u0, u1, u2, u3, u4, u5) = u
        let p = u1 + u2, q = u2 - u1, r = u3 + u4, s = u3 - u4
        return (u0 / 4 - p / 6 + r / 24, q / 6 + s / 12, r / 6 - p / 6 + u5)
    }

    @inline(__always) static func load6(_ p: UnsafePointer<Float>, _ stride: Int) -> Six {
        (load4(p), load4(p + stride), load4(p + 2 &* stride), load4(p + 3 &* stride), load4(p + 4 &* stride), load4(p + 5 &* stride))
    }

    @inline(__always) static func store6(_ v: Six, _ p: UnsafeMutablePointer<Float>, _ stride: Int) {
        store4(v.0, p); store4(v.1, p + stride); store4(v.2, p + 2 &* stride)
        store4(v.3, p + 3 &* stride); store4(v.4, p + 4 &* stride); store4(v.5, p + 5 &* stride)
    }

    // MARK: weights

    /// U[ξ][o][c] = (G g Gᵀ)[ξ], ξ = 6·row + column, for each kernel g = weight[o][c], four at a time.
    func transformWeights(_ wt: UnsafePointer<Float>, _ kernels: Range<Int>, into u: UnsafeMutablePointer<Float>) {
        let plane = Self.slab(cout &* cin)
        for at in stride(from: kernels.lowerBound, to: kernels.upperBound, by: 4) {
            let lanes = min(4, kernels.upperBound &- at)
            let k = kernelTaps(wt, at, lanes)
            // G on the three columns of g (6 × 3), then on each of the six rows.
            let c0 = Self.g(k.0, k.3, k.6), c1 = Self.g(k.1, k.4, k.7), c2 = Self.g(k.2, k.5, k.8)
            func put(_ row: Six, _ r: Int) {
                let o = u + ((6 &* r) &* plane &+ at)
                store(row.0, o, lanes: lanes); store(row.1, o + plane, lanes: lanes); store(row.2, o + 2 &* plane, lanes: lanes)
                store(row.3, o + 3 &* plane, lanes: lanes); store(row.4, o + 4 &* plane, lanes: lanes)
                store(row.5, o + 5 &* plane, lanes: lanes)
            }
            put(Self.g(c0.0, c1.0, c2.0), 0); put(Self.g(c0.1, c1.1, c2.1), 1); put(Self.g(c0.2, c1.2, c2.2), 2)
            put(Self.g(c0.3, c1.3, c2.3), 3); put(Self.g(c0.4, c1.4, c2.4), 4); put(Self.g(c0.5, c1.5, c2.5), 5)
        }
    }

    /// dW[o][c] += Gᵀ dU[·][o][c] G, the adjoint of `transformWeights`, four kernels at a time.
    func accumulateWeightGradient(_ du: UnsafePointer<Float>, _ kernels: Range<Int>, into dw: UnsafeMutablePointer<Float>) {
        let plane = Self.slab(cout &* cin)
        for at in stride(from: kernels.lowerBound, to: kernels.upperBound, by: 4) {
            let lanes = min(4, kernels.upperBound &- at)
            // Gᵀ along each row r of dU (ξ = 6r + column), then down each of the three columns.
            let d = du + at
            let q0 = Self.gT(Self.load6(d, plane)), q1 = Self.gT(Self.load6(d + 6 &* plane, plane))
            let q2 = Self.gT(Self.load6(d + 12 &* plane, plane)), q3 = Self.gT(Self.load6(d + 18 &* plane, plane))
            let q4 = Self.gT(Self.load6(d + 24 &* plane, plane)), q5 = Self.gT(Self.load6(d + 30 &* plane, plane))
            let c0 = Self.gT((q0.0, q1.0, q2.0, q3.0, q4.0, q5.0))
            let c1 = Self.gT((q0.1, q1.1, q2.1, q3.1, q4.1, q5.1))
            let c2 = Self.gT((q0.2, q1.2, q2.2, q3.2, q4.2, q5.2))
            // cB.a is tap (row a, column B) of the four kernels.
            for l in 0..<lanes {
                let k = dw + (at &+ l) &* 9
                k[0] += c0.0[l]; k[1] += c1.0[l]; k[2] += c2.0[l]
                k[3] += c0.1[l]; k[4] += c1.1[l]; k[5] += c2.1[l]
                k[6] += c0.2[l]; k[7] += c1.2[l]; k[8] += c2.2[l]
            }
        }
    }

    /// G (g0, g1, g2): (g0/4, −(g0 + g1 + g2)/6, −(g0 − g1 + g2)/6, g0/24 + g1/12 + g2/6, g0/24 − g1/12 + g2/6, g2).
    @inline(__always) static func g(_ g0: V4, _ g1: V4, _ g2: V4) -> Six {
        let s = g0 + g2, t = g0 / 24 + g2 / 6
        return (g0 / 4, -(s + g1) / 6, -(s - g1) / 6, t + g1 / 12, t - g1 / 12, g2)
    }

    // MARK: planes

    /// The six patch columns of tiles j…j + 3 in one split row.
    @inline(__always) func patchColumns(_ row: UnsafePointer<Float>, _ j: Int) -> Six {
        let q = phase
        return (load4(row + j), load4(row + (q &+ j)), load4(row + (2 &* q &+ j)), load4(row + (3 &* q &+ j)),
                load4(row + (j &+ 1)), load4(row + (q &+ j &+ 1)))
    }

    // MARK: transforms

    /// V[ξ][c][t] = (Bᵀ d B)[ξ] for the 6×6 input patch d of every tile t of the pass.
    func transformInput(_ x: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>, channels: Range<Int>,
                        into v: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>) {
        let perImage = rows.count &* tw, t = images.count &* perImage, xs = Self.slab(cin &* t), tw = self.tw, pw = self.pw
        for c in channels {
            for b in images {
                split(x + (b &* cin &+ c) &* h &* w, at: 1, rows: patchRows(rows), into: plane)
                let base = v + (c &* t &+ (b &- images.lowerBound) &* perImage &- rows.lowerBound &* tw)
                for i in rows {
                    let top = UnsafePointer(plane + 4 &* i &* pw)
                    for j in stride(from: 0, to: tw, by: 4) {
                        // Bᵀ on each patch row's columns, then Bᵀ down each of the six columns.
                        let r0 = Self.bT(patchColumns(top, j)), r1 = Self.bT(patchColumns(top + pw, j))
                        let r2 = Self.bT(patchColumns(top + 2 &* pw, j)), r3 = Self.bT(patchColumns(top + 3 &* pw, j))
                        let r4 = Self.bT(patchColumns(top + 4 &* pw, j)), r5 = Self.bT(patchColumns(top + 5 &* pw, j))
                        let o = base + (i &* tw &+ j)
                        // Row a of the result goes to ξ = 6a + column.
                        let c0 = Self.bT((r0.0, r1.0, r2.0, r3.0, r4.0, r5.0)), c1 = Self.bT((r0.1, r1.1, r2.1, r3.1, r4.1, r5.1))
                        let c2 = Self.bT((r0.2, r1.2, r2.2, r3.2, r4.2, r5.2)), c3 = Self.bT((r0.3, r1.3, r2.3, r3.3, r4.3, r5.3))
                        let c4 = Self.bT((r0.4, r1.4, r2.4, r3.4, r4.4, r5.4)), c5 = Self.bT((r0.5, r1.5, r2.5, r3.5, r4.5, r5.5))
                        Self.store6(c0, o, 6 &* xs); Self.store6(c1, o + xs, 6 &* xs); Self.store6(c2, o + 2 &* xs, 6 &* xs)
                        Self.store6(c3, o + 3 &* xs, 6 &* xs); Self.store6(c4, o + 4 &* xs, 6 &* xs); Self.store6(c5, o + 5 &* xs, 6 &* xs)
                    }
                }
            }
        }
    }

    /// y tiles = Aᵀ M A (+ bias) for every tile of the pass.
    func transformOutput(_ m: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>, channels: Range<Int>,
                         bias: UnsafePointer<Float>?, epilogue: Epilogue?, into y: UnsafeMutablePointer<Float>,
                         plane: UnsafeMutablePointer<Float>) {
        let perImage = rows.count &* tw, t = images.count &* perImage, xs = Self.slab(cout &* t), tw = self.tw, exact = self.exact
        let ow = 4 &* tw, pixels = outputPixels(rows)
        for o in channels {
            let bo = V4(repeating: bias?[o] ?? 0)
            for b in images {
                let dst = y + (b &* cout &+ o) &* h &* w
                let target = exact ? dst : plane
                let base = m + (o &* t &+ (b &- images.lowerBound) &* perImage &- rows.lowerBound &* tw)
                for i in rows {
                    for j in stride(from: 0, to: tw, by: 4) {
                        let p = UnsafePointer(base + (i &* tw &+ j))
                        // Aᵀ along each row of M (ξ = 6a + k), then along each of the four columns.
                        let s0 = Self.aT(Self.load6(p, xs)), s1 = Self.aT(Self.load6(p + 6 &* xs, xs))
                        let s2 = Self.aT(Self.load6(p + 12 &* xs, xs)), s3 = Self.aT(Self.load6(p + 18 &* xs, xs))
                        let s4 = Self.aT(Self.load6(p + 24 &* xs, xs)), s5 = Self.aT(Self.load6(p + 30 &* xs, xs))
                        let y0 = Self.aT((s0.0, s1.0, s2.0, s3.0, s4.0, s5.0)), y1 = Self.aT((s0.1, s1.1, s2.1, s3.1, s4.1, s5.1))
                        let y2 = Self.aT((s0.2, s1.2, s2.2, s3.2, s4.2, s5.2)), y3 = Self.aT((s0.3, s1.3, s2.3, s3.3, s4.3, s5.3))
                        // y_k.r is output row r, column k of the four tiles; a transpose makes each
                        // tile's four columns contiguous.
                        let row = target + (4 &* i &* ow &+ 4 &* j)
                        Self.storeOutputRow(y0.0, y1.0, y2.0, y3.0, bo, row)
                        Self.storeOutputRow(y0.1, y1.1, y2.1, y3.1, bo, row + ow)
                        Self.storeOutputRow(y0.2, y1.2, y2.2, y3.2, bo, row + 2 &* ow)
                        Self.storeOutputRow(y0.3, y1.3, y2.3, y3.3, bo, row + 3 &* ow)
                    }
                }
                if !exact {
                    for yy in pixels.lowerBound / w..<pixels.upperBound / w { (dst + yy &* w).update(from: plane + yy &* ow, count: w) }
                }
                epilogue?.apply(y, plane: b &* cout &+ o, channels: cout, pixels: pixels, planeSize: h &* w)
            }
        }
    }

    /// dM[ξ][o][t] = (A dY Aᵀ)[ξ] for the 4×4 output-gradient tiles (zero past the image) in tile
    /// rows `rows` of the images `images`.
    func transformOutputGradient(_ dy: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>, channels: Range<Int>,
                                 into dm: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>) {
        let perImage = rows.count &* tw, t = images.count &* perImage, xs = Self.slab(cout &* t), tw = self.tw, exact = self.exact
        let q = phase, pw = self.pw
        for o in channels {
            for b in images {
                let src = dy + (b &* cout &+ o) &* h &* w
                if !exact { split(src, at: 0, rows: 4 &* rows.lowerBound..<4 &* rows.upperBound, into: plane) }
                let base = dm + (o &* t &+ (b &- images.lowerBound) &* perImage &- rows.lowerBound &* tw)
                for i in rows {
                    for j in stride(from: 0, to: tw, by: 4) {
                        // Row r of the four tiles as its four columns, each a vector over the tiles.
                        func row(_ r: Int) -> Four {
                            if exact {
                                let p = src + ((4 &* i &+ r) &* w &+ 4 &* j)
                                return transpose4(load4(p), load4(p + 4), load4(p + 8), load4(p + 12))
                            }
                            let p = UnsafePointer(plane + ((4 &* i &+ r) &* pw &+ j))
                            return (load4(p), load4(p + q), load4(p + 2 &* q), load4(p + 3 &* q))
                        }
                        // A along each row (four columns to six), then down each of the six columns.
                        let y0 = row(0), y1 = row(1), y2 = row(2), y3 = row(3)
                        let z0 = Self.a(y0.0, y0.1, y0.2, y0.3), z1 = Self.a(y1.0, y1.1, y1.2, y1.3)
                        let z2 = Self.a(y2.0, y2.1, y2.2, y2.3), z3 = Self.a(y3.0, y3.1, y3.2, y3.3)
                        let p = base + (i &* tw &+ j)
                        // Column k of the result holds ξ = 6a + k for a = 0…5.
                        Self.store6(Self.a(z0.0, z1.0, z2.0, z3.0), p, 6 &* xs)
                        Self.store6(Self.a(z0.1, z1.1, z2.1, z3.1), p + xs, 6 &* xs)
                        Self.store6(Self.a(z0.2, z1.2, z2.2, z3.2), p + 2 &* xs, 6 &* xs)
                        Self.store6(Self.a(z0.3, z1.3, z2.3, z3.3), p + 3 &* xs, 6 &* xs)
                        Self.store6(Self.a(z0.4, z1.4, z2.4, z3.4), p + 4 &* xs, 6 &* xs)
                        Self.store6(Self.a(z0.5, z1.5, z2.5, z3.5), p + 5 &* xs, 6 &* xs)
                    }
                }
            }
        }
    }

    /// Output row r of four tiles (its columns as vectors over the tiles) plus bias, tile by tile.
    @inline(__always) static func storeOutputRow(_ c0: V4, _ c1: V4, _ c2: V4, _ c3: V4, _ bias: V4, _ row: UnsafeMutablePointer<Float>) {
        let (t0, t1, t2, t3) = transpose4(c0 + bias, c1 + bias, c2 + bias, c3 + bias)
        store4(t0, row); store4(t1, row + 4); store4(t2, row + 8); store4(t3, row + 12)
    }
}
