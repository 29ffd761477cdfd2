/// How `prepare` brings the orthos to [0, 1].
public enum Contrast: String, CaseIterable, Sendable {
    /// Contrast-limited adaptive histogram equalization, as DeepDEM applies skimage's
    /// `equalize_adapthist` with its defaults: the valid range split into 256 levels, 8×8 context
    /// regions, clip limit 0.01 of a region's pixels, mappings interpolated bilinearly between
    /// region centres. Unlike skimage, nodata pixels take no part in the histograms.
    case clahe
    /// Linear stretch of the 2nd–98th percentile onto [0, 1], clipped.
    case stretch
    /// Values kept as they are (orthos already normalized).
    case none
}

/// Contrast normalization of one band, streamed strip by strip so a scene of any size needs
/// only its strips in memory: `observeRange` over every strip, then `observeHistogram` over
/// every strip, `finish`, and `apply` over every strip. NaN (nodata) stays NaN.
struct ContrastNormalizer {
    let method: Contrast
    let width: Int
    let height: Int
    private(set) var low = Float.infinity
    private(set) var high = -Float.infinity
    private var levels = 0
    private var regionsX = 1, regionsY = 1, regionWidth = 1, regionHeight = 1
    /// Per region `levels` counts (CLAHE), or one histogram (stretch).
    private var counts: [Int] = []
    /// Per region `levels` mapped values in [0, 1] (CLAHE).
    private var lookup: [Float] = []
    private var stretchFrom: Float = 0
    private var stretchScale: Float = 0

    static let claheLevels = 256
    static let claheRegions = 8
    static let claheClipLimit = 0.01
    static let stretchLevels = 4096
    static let stretchPercentiles = (2.0, 98.0)

    init(method: Contrast, width: Int, height: Int) {
        self.method = method
        self.width = width
        self.height = height
        switch method {
        case .clahe:
            levels = ContrastNormalizer.claheLevels
            regionWidth = (width + ContrastNormalizer.claheRegions - 1) / ContrastNormalizer.claheRegions
            regionHeight = (height + ContrastNormalizer.claheRegions - 1) / ContrastNormalizer.claheRegions
            regionsX = (width + regionWidth - 1) / regionWidth
            regionsY = (height + regionHeight - 1) / regionHeight
            counts = [Int](repeating: 0, count: regionsX * regionsY * levels)
        case .stretch:
            levels = ContrastNormalizer.stretchLevels
            counts = [Int](repeating: 0, count: levels)
        case .none:
            break
        }
    }

    var isIdentity: Bool { method == .none }

    mutating func observeRange(_ values: UnsafeBufferPointer<Float>) {
        var lo = low, hi = high
        for v in values where !v.isNaN {
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
        low = lo
        high = hi
    }

    @inline(__always) static func level(_ v: Float, low: Float, scale: Float, levels: Int) -> Int {
        let l = Int(((v - low) * scale).rounded())
        return l < 0 ? 0 : (l >= levels ? levels &- 1 : l)
    }

    private var levelScale: Float { high > low ? Float(levels - 1) / (high - low) : 0 }

    /// Counts the valid pixels of rows [y0, y0 + rows) (full width).
    mutating func observeHistogram(_ values: UnsafeBufferPointer<Float>, y0: Int, rows: Int) {
        guard method != .none else { return }
        let scale = levelScale, low = self.low, n = levels
        let w = width, clahe = method == .clahe
        let regionWidth = self.regionWidth, regionHeight = self.regionHeight, regionsX = self.regionsX
        counts.withUnsafeMutableBufferPointer { h in
            for r in 0..<rows {
                let regionRow = clahe ? ((y0 &+ r) / regionHeight) &* regionsX : 0
                for x in 0..<w {
                    let v = values[r &* w &+ x]
                    if v.isNaN { continue }
                    let region = clahe ? regionRow &+ x / regionWidth : 0
                    h[region &* n &+ ContrastNormalizer.level(v, low: low, scale: scale, levels: n)] &+= 1
                }
            }
        }
    }

    mutating func finish() {
        switch method {
        case .clahe: buildLookup()
        case .stretch: chooseStretch()
        case .none: break
        }
    }

    /// Per region: clip the histogram at the limit, spread the clipped excess evenly over all
    /// levels, and map each level to its cumulative share of the region's pixels.
    private mutating func buildLookup() {
        let n = levels
        lookup = [Float](repeating: 0, count: counts.count)
        for region in 0..<(regionsX * regionsY) {
            let base = region * n
            var total = 0
            for l in 0..<n { total &+= counts[base &+ l] }
            if total == 0 {
                for l in 0..<n { lookup[base &+ l] = Float(l) / Float(n - 1) }
                continue
            }
            let limit = max(1.0, ContrastNormalizer.claheClipLimit * Double(total))
            var excess = 0.0
            for l in 0..<n { excess += max(0, Double(counts[base &+ l]) - limit) }
            let spread = excess / Double(n)
            var cumulative = 0.0
            for l in 0..<n {
                cumulative += min(Double(counts[base &+ l]), limit) + spread
                lookup[base &+ l] = Float(min(1, cumulative / Double(total)))
            }
        }
    }

    private mutating func chooseStretch() {
        var total = 0
        for c in counts { total &+= c }
        guard total > 0, high > low else { return }
        let step = Double(high - low) / Double(levels - 1)
        // The value below which `percent` % of the pixels lie, linear within a level (a level
        // covers ±step/2 around its centre).
        func percentile(_ percent: Double) -> Double {
            let wanted = percent / 100 * Double(total)
            var below = 0.0
            for l in 0..<levels {
                let c = Double(counts[l])
                if below + c >= wanted, c > 0 {
                    return Double(low) + (Double(l) - 0.5 + (wanted - below) / c) * step
                }
                below += c
            }
            return Double(high)
        }
        let from = percentile(ContrastNormalizer.stretchPercentiles.0)
        let to = percentile(ContrastNormalizer.stretchPercentiles.1)
        stretchFrom = Float(from)
        stretchScale = to > from ? Float(1 / (to - from)) : 0
    }

    /// Normalizes rows [y0, y0 + rows) in place.
    func apply(_ values: UnsafeMutableBufferPointer<Float>, y0: Int, rows: Int) {
        switch method {
        case .none:
            return
        case .stretch:
            for i in 0..<(rows &* width) where !values[i].isNaN {
                let v = (values[i] - stretchFrom) * stretchScale
                values[i] = v < 0 ? 0 : (v > 1 ? 1 : v)
            }
        case .clahe:
            applyCLAHE(values, y0: y0, rows: rows)
        }
    }

    /// Each pixel's level mapped by the four nearest region centres, weighted bilinearly (one
    /// or two near the image border, where the outer mapping holds).
    private func applyCLAHE(_ values: UnsafeMutableBufferPointer<Float>, y0: Int, rows: Int) {
        let scale = levelScale, low = self.low
        let n = levels, w = width
        // Per column: left region, right region, weight of the right one.
        var left = [Int](repeating: 0, count: w), right = left
        var weightX = [Float](repeating: 0, count: w)
        for x in 0..<w {
            let (a, b, t) = ContrastNormalizer.neighbours(x, size: regionWidth, count: regionsX)
            left[x] = a; right[x] = b; weightX[x] = t
        }
        lookup.withUnsafeBufferPointer { lut in
            for r in 0..<rows {
                let (top, bottom, ty) = ContrastNormalizer.neighbours(y0 &+ r, size: regionHeight, count: regionsY)
                let topRow = top &* regionsX, bottomRow = bottom &* regionsX
                for x in 0..<w {
                    let i = r &* w &+ x
                    let v = values[i]
                    if v.isNaN { continue }
                    let l = ContrastNormalizer.level(v, low: low, scale: scale, levels: n)
                    let tx = weightX[x]
                    let upper = (1 - tx) * lut[(topRow &+ left[x]) &* n &+ l] + tx * lut[(topRow &+ right[x]) &* n &+ l]
                    let lower = (1 - tx) * lut[(bottomRow &+ left[x]) &* n &+ l] + tx * lut[(bottomRow &+ right[x]) &* n &+ l]
                    values[i] = (1 - ty) * upper + ty * lower
                }
            }
        }
    }

    /// The regions whose centres bracket pixel `p` along one axis, and the weight of the second.
    static func neighbours(_ p: Int, size: Int, count: Int) -> (Int, Int, Float) {
        let f = (Double(p) + 0.5) / Double(size) - 0.5
        if f <= 0 { return (0, 0, 0) }
        let a = Int(f)
        if a >= count - 1 { return (count - 1, count - 1, 0) }
        return (a, a + 1, Float(f - Double(a)))
    }
}
