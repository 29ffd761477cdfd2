/// Geometry of a 2-D convolution or pooling window over one image.
struct ConvGeometry: Equatable {
    var channels: Int, height: Int, width: Int
    var kernel: Int, stride: Int, padding: Int

    var outHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    var outWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
    /// Rows of the column matrix: one per (channel, ky, kx).
    var colRows: Int { channels * kernel * kernel }
    var colCols: Int { outHeight * outWidth }
    var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }
}

/// col[(c·k + ky)·k + kx, (oy − rows.lowerBound)·OW + ox] = x[c, oy·s − p + ky, ox·s − p + kx] (0 outside
/// the image) for the output rows `rows` (all unless given), split over the workers by channel.
/// Rows of col are `rowStride` apart (the chunk's columns unless given).
func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, _ col: UnsafeMutablePointer<Float>, rowStride: Int? = nil,
            rows: Range<Int>? = nil) {
    let rows = rows ?? 0..<g.outHeight
    let stride = rowStride ?? rows.count &* g.outWidth
    Parallel.forEach(g.channels) { channels, _ in im2col(x, g, col, rowStride: stride, rows: rows, channels: channels) }
}

/// The rows of im2col for the input channels `channels`, on the calling thread.
func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, _ col: UnsafeMutablePointer<Float>, rowStride: Int,
            rows: Range<Int>, channels: Range<Int>) {
    if g.stride == 1 {
        contiguousIm2col(x, g, col, rowStride: rowStride, channels: channels, rows: rows)
    } else {
        PhasePlane.withBuffer(g) { plane in
            for c in channels { plane.im2col(x + c &* g.height &* g.width, channel: c, col, rowStride: rowStride, rows: rows) }
        }
    }
}

/// Stride 1: each column row is a contiguous run of an input row; only the padded borders need zeros.
private func contiguousIm2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, _ col: UnsafeMutablePointer<Float>, rowStride: Int,
                    channels: Range<Int>, rows: Range<Int>) {
    let ow = g.outWidth, k = g.kernel, p = g.padding
    let h = g.height, w = g.width
    var row = channels.lowerBound &* k &* k
    for c in channels {
        let plane = x + c &* h &* w
        for ky in 0..<k {
            for kx in 0..<k {
                let dst = col + row &* rowStride
                for oy in rows {
                    let iy = oy &- p &+ ky
                    let d = dst + (oy &- rows.lowerBound) &* ow
                    if iy < 0 || iy >= h {
                        d.update(repeating: 0, count: ow)
                        continue
                    }
                    let src = plane + iy &* w
                    var ox = 0
                    while ox < ow && ox &- p &+ kx < 0 { d[ox] = 0; ox &+= 1 }
                    var end = ow
                    while end > ox && end &- 1 &- p &+ kx >= w { end &-= 1; d[end] = 0 }
                    if end > ox { (d + ox).update(from: src + (ox &- p &+ kx), count: end &- ox) }
                }
                row &+= 1
            }
        }
    }
}

/// One channel zero-padded by p on every side, each padded row split into its s column phases
/// (column j of a padded row goes to phase j mod s, position j / s). The window column kx of a
/// strided convolution then reads, along an output row, one phase from position kx / s on: a
/// contiguous copy instead of a strided gather with bounds checks.
private struct PhasePlane {
    let g: ConvGeometry
    let buffer: UnsafeMutablePointer<Float>
    /// Floats per phase and per padded row.
    var phaseLength: Int { Self.phaseLength(g) }
    var rowLength: Int { g.stride &* phaseLength }

    static func phaseLength(_ g: ConvGeometry) -> Int { (g.width &+ 2 &* g.padding &+ g.stride &- 1) / g.stride }

    static func withBuffer(_ g: ConvGeometry, _ body: (PhasePlane) -> Void) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: (g.height + 2 * g.padding) * g.stride * phaseLength(g)) {
            body(PhasePlane(g: g, buffer: $0.baseAddress!))
        }
    }

    func im2col(_ plane: UnsafePointer<Float>, channel c: Int, _ col: UnsafeMutablePointer<Float>, rowStride: Int,
                rows: Range<Int>) {
        let k = g.kernel, s = g.stride, ow = g.outWidth, length = phaseLength, rl = rowLength
        // Only the padded rows these output rows read.
        let first = rows.lowerBound &* s, last = min((rows.upperBound &- 1) &* s &+ k, g.height &+ 2 &* g.padding)
        for py in first..<last { fill(plane, paddedRow: py) }
        var row = c &* k &* k
        for ky in 0..<k {
            for kx in 0..<k {
                let dst = col + row &* rowStride
                let src = UnsafePointer(buffer) + ((kx % s) &* length &+ kx / s)
                for oy in rows {
                    (dst + (oy &- rows.lowerBound) &* ow).update(from: src + (oy &* s &+ ky) &* rl, count: ow)
                }
                row &+= 1
            }
        }
    }

    private func fill(_ plane: UnsafePointer<Float>, paddedRow py: Int) {
        let s = g.stride, p = g.padding, w = g.width, length = phaseLength
        let d = buffer + py &* rowLength
        let iy = py &- p
        guard iy >= 0 && iy < g.height else {
            d.update(repeating: 0, count: rowLength)
            return
        }
        let src = plane + iy &* w
        for phase in 0..<s {
            let out = d + phase &* length
            for q in 0..<length {
                let ix = q &* s &+ phase &- p
                out[q] = ix >= 0 && ix < w ? src[ix] : 0
            }
        }
    }
}

/// The adjoint of im2col: dx[c, iy, ix] += Σ over the column entries that read it.
func col2im(_ col: UnsafePointer<Float>, _ g: ConvGeometry, _ dx: UnsafeMutablePointer<Float>) {
    Parallel.forEach(g.channels) { channels, _ in col2im(col, g, dx, channels: channels) }
}

private func col2im(_ col: UnsafePointer<Float>, _ g: ConvGeometry, _ dx: UnsafeMutablePointer<Float>, channels: Range<Int>) {
    let oh = g.outHeight, ow = g.outWidth, k = g.kernel, s = g.stride, p = g.padding
    let h = g.height, w = g.width
    var row = channels.lowerBound &* k &* k
    for c in channels {
        let plane = dx + c &* h &* w
        for ky in 0..<k {
            for kx in 0..<k {
                let src = col + row &* oh &* ow
                for oy in 0..<oh {
                    let iy = oy &* s &- p &+ ky
                    if iy < 0 || iy >= h { continue }
                    let d = plane + iy &* w
                    let srow = src + oy &* ow
                    for ox in 0..<ow {
                        let ix = ox &* s &- p &+ kx
                        if ix >= 0 && ix < w { d[ix] += srow[ox] }
                    }
                }
                row &+= 1
            }
        }
    }
}
