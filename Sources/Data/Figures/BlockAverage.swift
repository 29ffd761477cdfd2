/// Reduces a window of same-grid rasters by an integer factor for display: each output pixel is
/// the mean of the valid pixels of its factor×factor block (NaN when it has none). Reads go by
/// strips of `factor` rows, so a scene of any size costs one strip of memory.
enum BlockAverage {
    /// `derive` turns each strip of the rasters (full resolution, row-major, `count` pixels) into
    /// the layers to reduce, NaN where a layer is not valid; it sees every pixel exactly once.
    static func reduce(_ rasters: [Raster], window: PixelWindow, factor: Int,
                       derive: (_ strips: [[Float]], _ count: Int) -> [[Float]]) throws -> (width: Int, height: Int, layers: [[Float]]) {
        let f = max(1, factor), w = window.width
        let outWidth = (w + f - 1) / f, outHeight = (window.height + f - 1) / f
        var layers: [[Float]] = []
        var sums = [Double](repeating: 0, count: outWidth)
        var counts = [Int](repeating: 0, count: outWidth)
        for j in 0..<outHeight {
            let y0 = window.y + j * f, rows = min(f, window.y + window.height - y0)
            let strips = try rasters.map { try $0.read(x: window.x, y: y0, width: w, height: rows) }
            let derived = derive(strips, rows * w)
            if layers.isEmpty { layers = Array(repeating: [Float](repeating: .nan, count: outWidth * outHeight), count: derived.count) }
            for (l, plane) in derived.enumerated() {
                for i in 0..<outWidth { sums[i] = 0; counts[i] = 0 }
                plane.withUnsafeBufferPointer { p in
                    for r in 0..<rows {
                        for x in 0..<w {
                            let v = p[r &* w &+ x]
                            if v.isNaN { continue }
                            sums[x / f] += Double(v)
                            counts[x / f] &+= 1
                        }
                    }
                }
                for i in 0..<outWidth where counts[i] > 0 { layers[l][j * outWidth + i] = Float(sums[i] / Double(counts[i])) }
            }
        }
        return (outWidth, outHeight, layers)
    }
}
