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

/// col[(c·k + ky)·k + kx, oy·OW + ox] = x[c, oy·s − p + ky, ox·s − p + kx] (0 outside the image),
/// split over the workers by channel. Rows of col are `rowStride` apart (OH·OW unless given).
func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, _ col: UnsafeMutablePointer<Float>, rowStride: Int? = nil) {
    let stride = rowStride ?? g.colCols
    Parallel.forEach(g.channels) { channels, _ in im2col(x, g, col, rowStride: stride, channels: channels) }
}

private func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, _ col: UnsafeMutablePointer<Float>, rowStride: Int,
                    channels: Range<Int>) {
    let oh = g.outHeight, ow = g.outWidth, k = g.kernel, s = g.stride, p = g.padding
    let h = g.height, w = g.width
    var row = channels.lowerBound &* k &* k
    for c in channels {
        let plane = x + c &* h &* w
        for ky in 0..<k {
            for kx in 0..<k {
                let dst = col + row &* rowStride
                for oy in 0..<oh {
                    let iy = oy &* s &- p &+ ky
                    let d = dst + oy &* ow
                    if iy < 0 || iy >= h {
                        d.update(repeating: 0, count: ow)
                        continue
                    }
                    let src = plane + iy &* w
                    if s == 1 {
                        // Contiguous run; only the padded borders need zeros.
                        var ox = 0
                        while ox < ow && ox &- p &+ kx < 0 { d[ox] = 0; ox &+= 1 }
                        var end = ow
                        while end > ox && end &- 1 &- p &+ kx >= w { end &-= 1; d[end] = 0 }
                        if end > ox { (d + ox).update(from: src + (ox &- p &+ kx), count: end &- ox) }
                    } else {
                        for ox in 0..<ow {
                            let ix = ox &* s &- p &+ kx
                            d[ox] = (ix >= 0 && ix < w) ? src[ix] : 0
                        }
                    }
                }
                row &+= 1
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
