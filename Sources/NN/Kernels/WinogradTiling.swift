
/// What F(2×2, 3×3) (`WinogradConv`) and F(4×4, 3×3) (`WinogradF4Conv`) share: output tiles of
/// `tile`×`tile` pixels read from (`tile` + 2)² input patches, rows of tiles padded to a multiple of
/// 4 (the width of the vector loops; the extra tiles see zeros, give zeros to the weight gradient
/// and are never written out), the batch in passes of about `passTiles` tiles (which bounds the
/// transformed buffers without starving the GEMMs), the workspace layout, and the forward pass:
/// weights, input and output transforms around one GEMM per transformed position ξ.
protocol WinogradTiling {
    var cin: Int { get }
    var cout: Int { get }
    var n: Int { get }
    var h: Int { get }
    var w: Int { get }
    var precision: Precision { get }
    static var tile: Int { get }
    static var passTiles: Int { get }

    /// U[ξ][o][c] for the kernels in `kernels` (o·cin + c).
    func transformWeights(_ wt: UnsafePointer<Float>, _ kernels: Range<Int>, into u: UnsafeMutablePointer<Float>)
    /// V[ξ][c][t] for every tile t in tile rows `rows` of the images `images`.
    func transformInput(_ x: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>, channels: Range<Int>,
                        into v: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>)
    /// Those tiles of the output (+ bias) from M[ξ][o][t], then the epilogue on the pixels they cover.
    func transformOutput(_ m: UnsafePointer<Float>, images: Range<Int>, rows: Range<Int>, channels: Range<Int>,
                         bias: UnsafePointer<Float>?, epilogue: Epilogue?, into y: UnsafeMutablePointer<Float>,
                         plane: UnsafeMutablePointer<Float>)
}

/// Tile rows `rows` of the images `images`: the unit the transforms and GEMMs go through together.
typealias Pass = (images: Range<Int>, rows: Range<Int>)

extension WinogradTiling {
    /// Transformed positions ξ: one GEMM each.
    static var positions: Int { (tile + 2) * (tile + 2) }

    /// Tile rows and columns of one image, and tiles per image.
    var th: Int { (h + Self.tile - 1) / Self.tile }
    var tw: Int { ((w + Self.tile - 1) / Self.tile + 3) & ~3 }
    var tilesPerImage: Int { th * tw }
    /// Whole images enough for `tiles` tiles (at least one, at most the batch).
    func images(toFill tiles: Int) -> Int { min(n, max(1, (tiles + tilesPerImage - 1) / tilesPerImage)) }
    /// The padded planes the transforms read and accumulate: `tile`·th + 2 rows, each split into its
    /// `tile` column phases (`phase` floats each), so that the patch columns of neighbouring tiles
    /// are unit-stride vectors.
    var ph: Int { Self.tile * th + 2 }
    var phase: Int { tw + 4 }
    var pw: Int { Self.tile * phase }
    /// Output tiles can be written straight into the image when they cover it exactly.
    var exact: Bool { h % Self.tile == 0 && w == Self.tile * tw }

    /// Tiles in a pass.
    func tiles(in pass: Pass) -> Int { pass.images.count * pass.rows.count * tw }

    /// The batch in ranges of `count` images (the last may be shorter).
    func groups(of count: Int) -> [Range<Int>] { stride(from: 0, to: n, by: count).map { $0..<min($0 + count, n) } }

    /// Passes of about `passTiles` tiles: several small images, or bands of tile rows of an image
    /// with twice that many or more, so that the transformed buffers stay in cache from the
    /// transform to the GEMMs and back (a whole 256² image with 32 channels would make 19 MB of
    /// them). Each output column's sums are the same whatever the pass.
    var passes: [Pass] {
        let target = Self.passTiles
        guard tilesPerImage >= 2 * target else { return groups(of: images(toFill: target)).map { ($0, 0..<th) } }
        let band = max(1, target / tw)
        return (0..<n).flatMap { b in stride(from: 0, to: th, by: band).map { (b..<b + 1, $0..<min($0 + band, th)) } }
    }

    /// Elements from one ξ matrix to the next: a little more than `count`, because matrices whose
    /// size is a multiple of 4 KB would put all the streams of a transform into the same cache sets.
    static func slab(_ count: Int) -> Int { count + 16 }

    /// Each worker's padded plane.
    func planes(_ ws: Workspace) -> [UnsafeMutablePointer<Float>] {
        (0..<Parallel.workers).map { ws.buffer(ph * pw, .plane($0)) }
    }

    /// U, for the passes that need the transformed weights (the weight gradient does not).
    func transformedWeights(_ ws: Workspace) -> UnsafeMutablePointer<Float> {
        ws.buffer(Self.positions * Self.slab(cout * cin), .transformedWeights)
    }

    /// `body(unit, spread, V, M)` for each unit in 0..<count (a pass, an image's passes), with V and M
    /// for up to `tiles` tiles. Either the workers share each unit in turn, through one V and M, or,
    /// with `own`, each worker takes whole units with a V and M of its own: one parallel region
    /// instead of several per pass. A unit computes the same sums either way.
    func forEachUnit(_ count: Int, own: Bool, tiles: Int, workspace ws: Workspace,
                     _ body: (Int, Spread, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let k = Self.positions
        guard own else {
            let v = ws.buffer(k * Self.slab(cin * tiles), .operand), m = ws.buffer(k * Self.slab(cout * tiles), .product)
            for unit in 0..<count { body(unit, .shared, v, m) }
            return
        }
        let buffers = (0..<Parallel.workers).map { w in
            (v: ws.buffer(k * Self.slab(cin * tiles), .workerOperand(w)), m: ws.buffer(k * Self.slab(cout * tiles), .workerProduct(w)))
        }
        Parallel.forEach(count) { range, w in
            for unit in range { body(unit, .on(w), buffers[w].v, buffers[w].m) }
        }
    }

    /// One h × w plane into the split, zero-padded plane, shifted by `at` rows and columns (1 for
    /// inputs, whose patches start one pixel before their tile; 0 for output gradients): the plane
    /// rows `rows` (the whole plane unless given).
    func split(_ src: UnsafePointer<Float>, at: Int, rows: Range<Int>? = nil, into plane: UnsafeMutablePointer<Float>) {
        let rows = rows ?? 0..<ph
        (plane + rows.lowerBound &* pw).update(repeating: 0, count: rows.count &* pw)
        for y in max(rows.lowerBound &- at, 0)..<min(rows.upperBound &- at, h) {
            splitRow(src + y &* w, count: w, at: at, phases: Self.tile, into: plane + (y &+ at) &* pw, stride: phase)
        }
    }

    /// The plane rows the input patches of tile rows `rows` read.
    func patchRows(_ rows: Range<Int>) -> Range<Int> { Self.tile &* rows.lowerBound..<Self.tile &* rows.upperBound &+ 2 }

    /// The output pixels of tile rows `rows` within one plane.
    func outputPixels(_ rows: Range<Int>) -> Range<Int> { min(Self.tile &* rows.lowerBound, h) &* w..<min(Self.tile &* rows.upperBound, h) &* w }

    /// y = conv(x) (+ bias), NCHW, then the epilogue. With enough passes each worker takes whole
    /// passes (`forEachUnit`): one parallel region per layer rather than three per pass.
    func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 into y: UnsafeMutablePointer<Float>, epilogue: Epilogue?, workspace ws: Workspace) {
        let passes = self.passes, planes = self.planes(ws), u = transformedWeights(ws)
        Parallel.forEach(cout * cin, grain: 256) { range, _ in transformWeights(weight, range, into: u) }
        forEachUnit(passes.count, own: passes.count >= 2 * Parallel.workers, tiles: passes.map(tiles(in:)).max()!,
                    workspace: ws) { unit, spread, v, m in
            let (images, rows) = passes[unit], t = tiles(in: passes[unit])
            spread.forEach(cin) { c, w in transformInput(x, images: images, rows: rows, channels: c, into: v, plane: planes[w]) }
            spread.each(Self.positions) { xi in multiply(xi, u, v, m, tiles: t) }
            spread.forEach(cout) { o, w in
                transformOutput(m, images: images, rows: rows, channels: o, bias: bias, epilogue: epilogue, into: y, plane: planes[w])
            }
        }
    }

    /// The passes image by image, or nil when a pass holds several images. A backward whose
    /// passes lie within images can give each worker whole images (their bands depend on each
    /// other, the images do not) with buffers of its own: one parallel region per layer where
    /// sharing each pass takes three per pass (a 256² layer with 16 channels has 64 passes of a few
    /// hundred microseconds each).
    func byImage(_ passes: [Pass]) -> [[Pass]]? {
        guard passes.allSatisfy({ $0.images.count == 1 }) else { return nil }
        return (0..<n).map { b in passes.filter { $0.images.lowerBound == b } }
    }

    /// Whether the workers take whole images rather than sharing each pass: when there are images for all.
    var workersTakeImages: Bool { Parallel.workers > 1 && n >= Parallel.workers }

    /// dU[ξ] = dM[ξ]·V[ξ]ᵀ for a pass of `tiles` tiles, added to the passes before it unless `first`:
    /// the weight gradient's sum over the tiles, on the calling thread.
    func weightGradientProduct(_ xi: Int, _ dm: UnsafePointer<Float>, _ v: UnsafePointer<Float>, into du: UnsafeMutablePointer<Float>,
                               tiles t: Int, first: Bool) {
        sgemm(precision, false, true, cout, cin, t, 1, dm + xi &* Self.slab(cout &* t), t, v + xi &* Self.slab(cin &* t), t,
              first ? 0 : 1, du + xi &* Self.slab(cout &* cin), cin)
    }

    /// M[ξ] = U[ξ]·V[ξ] for a pass of `tiles` tiles, on the calling thread.
    private func multiply(_ xi: Int, _ u: UnsafePointer<Float>, _ v: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, tiles t: Int) {
        sgemm(precision, false, false, cout, t, cin, 1, u + xi &* Self.slab(cout &* cin), cin, v + xi &* Self.slab(cin &* t), t,
              0, m + xi &* Self.slab(cout &* t), t)
    }
}
