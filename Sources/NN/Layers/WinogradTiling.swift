import CBLAS

/// What F(2×2, 3×3) (`WinogradConv`) and F(4×4, 3×3) (`WinogradF4Conv`) share: output tiles of
/// `tile`×`tile` pixels read from (`tile` + 2)² input patches, rows of tiles padded to a multiple of
/// 4 (the width of the vector loops; the extra tiles see zeros, give zeros to the weight gradient
/// and are never written out), the batch in chunks of at least `minimumTiles` tiles (which bounds
/// the transformed buffers without starving the GEMMs), the workspace layout, and the forward pass:
/// weights, input and output transforms around one GEMM per transformed position ξ.
protocol WinogradTiling {
    var cin: Int { get }
    var cout: Int { get }
    var n: Int { get }
    var h: Int { get }
    var w: Int { get }
    static var tile: Int { get }
    static var minimumTiles: Int { get }

    /// U[ξ][o][c] for the kernels in `kernels` (o·cin + c).
    func transformWeights(_ wt: UnsafePointer<Float>, _ kernels: Range<Int>, into u: UnsafeMutablePointer<Float>)
    /// V[ξ][c][t] for every tile t of the chunk `images`.
    func transformInput(_ x: UnsafePointer<Float>, images: Range<Int>, channels: Range<Int>,
                        into v: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>)
    /// The output tiles (+ bias) from M[ξ][o][t], each finished plane through the epilogue.
    func transformOutput(_ m: UnsafePointer<Float>, images: Range<Int>, channels: Range<Int>, bias: UnsafePointer<Float>?,
                         epilogue: Epilogue?, into y: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>)
}

extension WinogradTiling {
    /// Transformed positions ξ: one GEMM each.
    static var positions: Int { (tile + 2) * (tile + 2) }

    /// Tile rows and columns of one image, and tiles per image.
    var th: Int { (h + Self.tile - 1) / Self.tile }
    var tw: Int { ((w + Self.tile - 1) / Self.tile + 3) & ~3 }
    var tilesPerImage: Int { th * tw }
    var imagesPerChunk: Int { min(n, max(1, (Self.minimumTiles + tilesPerImage - 1) / tilesPerImage)) }
    var maxTiles: Int { imagesPerChunk * tilesPerImage }
    /// The padded planes the transforms read and accumulate: `tile`·th + 2 rows, each split into its
    /// `tile` column phases (`phase` floats each), so that the patch columns of neighbouring tiles
    /// are unit-stride vectors.
    var ph: Int { Self.tile * th + 2 }
    var phase: Int { tw + 4 }
    var pw: Int { Self.tile * phase }
    /// Output tiles can be written straight into the image when they cover it exactly.
    var exact: Bool { h % Self.tile == 0 && w == Self.tile * tw }

    var chunks: [Range<Int>] {
        stride(from: 0, to: n, by: imagesPerChunk).map { $0..<min($0 + imagesPerChunk, n) }
    }

    /// Elements from one ξ matrix to the next: a little more than `count`, because matrices whose
    /// size is a multiple of 4 KB would put all the streams of a transform into the same cache sets.
    static func slab(_ count: Int) -> Int { count + 16 }

    // Workspace slots: 0 V (and dV), 1 M (and dM), 2 U, 3 dU, 8… one padded plane per worker.
    func buffers(_ ws: Workspace) -> (v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
                                      u: UnsafeMutablePointer<Float>, planes: [UnsafeMutablePointer<Float>]) {
        let k = Self.positions
        return (ws.buffer(k * Self.slab(cin * maxTiles), slot: 0), ws.buffer(k * Self.slab(cout * maxTiles), slot: 1),
                ws.buffer(k * Self.slab(cout * cin), slot: 2), (0..<Parallel.workers).map { ws.buffer(ph * pw, slot: 8 + $0) })
    }

    /// One h × w plane into the split, zero-padded plane, shifted by `at` rows and columns (1 for
    /// inputs, whose patches start one pixel before their tile; 0 for output gradients).
    func split(_ src: UnsafePointer<Float>, at: Int, into plane: UnsafeMutablePointer<Float>) {
        plane.update(repeating: 0, count: ph &* pw)
        for y in 0..<h {
            splitRow(src + y &* w, count: w, at: at, phases: Self.tile, into: plane + (y &+ at) &* pw, stride: phase)
        }
    }

    /// y = conv(x) (+ bias), NCHW, then the epilogue.
    func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 into y: UnsafeMutablePointer<Float>, epilogue: Epilogue?, workspace ws: Workspace) {
        let (v, m, u, planes) = buffers(ws)
        Parallel.forEach(cout * cin, grain: 256) { range, _ in transformWeights(weight, range, into: u) }
        let us = Self.slab(cout &* cin)
        for images in chunks {
            let t = images.count * tilesPerImage, vs = Self.slab(cin &* t), ms = Self.slab(cout &* t)
            Parallel.forEach(cin) { c, w in transformInput(x, images: images, channels: c, into: v, plane: planes[w]) }
            gemmBatch(Self.positions) { xi in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(t), Int32(cin),
                            1, u + xi &* us, Int32(cin), v + xi &* vs, Int32(t), 0, m + xi &* ms, Int32(t))
            }
            Parallel.forEach(cout) { o, w in transformOutput(m, images: images, channels: o, bias: bias, epilogue: epilogue, into: y, plane: planes[w]) }
        }
    }
}
