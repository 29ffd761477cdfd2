import Foundation

/// Accuracy of a height raster against truth, e = value − truth over the usable pixels.
/// Quantiles interpolate linearly between order statistics (NumPy's default); NMAD is
/// 1.4826 · median(|e − median(e)|), LE90 the 90th percentile of |e|.
public struct ErrorMetrics: Codable, Equatable, Sendable {
    public var count: Int
    public var bias: Double
    public var mae: Double
    public var rmse: Double
    public var median: Double
    public var nmad: Double
    public var le90: Double

    public init(count: Int, bias: Double, mae: Double, rmse: Double, median: Double, nmad: Double, le90: Double) {
        self.count = count
        self.bias = bias
        self.mae = mae
        self.rmse = rmse
        self.median = median
        self.nmad = nmad
        self.le90 = le90
    }
}

/// Refined metrics, and the initial DSM's over the same pixels when one was given.
public struct MetricsPair: Codable, Equatable, Sendable {
    public var refined: ErrorMetrics
    public var initial: ErrorMetrics?
}

public struct Evaluation: Codable, Equatable, Sendable {
    public var all: MetricsPair
    /// Pixels whose class raster value is above the threshold, and the others (class nodata: neither).
    public var inside: MetricsPair?
    public var outside: MetricsPair?
    /// One entry per `Evaluator.groups` entry, in its order (nil without groups, so reports
    /// written before groups existed read back).
    public var groups: [GroupMetrics]?
}

public struct GroupMetrics: Codable, Equatable, Sendable {
    public var name: String
    public var metrics: MetricsPair
}

/// A named set of pixels of the truth's grid (a slope bin, a land-cover class), whose metrics are
/// reported beside the overall ones; groups may overlap (a dilated class) or leave pixels out.
public struct PixelGroup: Sendable {
    public let name: String
    public let width: Int, height: Int
    private var bits: [UInt64]

    public init(name: String, width: Int, height: Int) {
        self.name = name
        self.width = width
        self.height = height
        bits = [UInt64](repeating: 0, count: (width &* height &+ 63) / 64)
    }

    public func contains(_ i: Int) -> Bool { bits[i >> 6] & (1 << UInt64(i & 63)) != 0 }
    public mutating func insert(_ i: Int) { bits[i >> 6] |= 1 << UInt64(i & 63) }
    public var count: Int { bits.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// The set grown by `pixels` in every direction (a (2n+1)² square), e.g. to count a building's edges
    /// with it: rows then columns, each a running window.
    public func dilated(by pixels: Int) -> PixelGroup {
        guard pixels > 0 else { return self }
        var rows = PixelGroup(name: name, width: width, height: height)
        for r in 0..<height {
            var last = Int.min / 2   // column of the last member seen
            for c in 0..<width {
                if contains(r &* width &+ c) { last = c }
                if c &- last <= pixels { rows.insert(r &* width &+ c) }
            }
            last = Int.max / 2
            for c in stride(from: width - 1, through: 0, by: -1) {
                if contains(r &* width &+ c) { last = c }
                if last &- c <= pixels { rows.insert(r &* width &+ c) }
            }
        }
        var out = PixelGroup(name: name, width: width, height: height)
        for c in 0..<width {
            var last = Int.min / 2
            for r in 0..<height {
                if rows.contains(r &* width &+ c) { last = r }
                if r &- last <= pixels { out.insert(r &* width &+ c) }
            }
            last = Int.max / 2
            for r in stride(from: height - 1, through: 0, by: -1) {
                if rows.contains(r &* width &+ c) { last = r }
                if last &- r <= pixels { out.insert(r &* width &+ c) }
            }
        }
        return out
    }
}

/// Computes `Evaluation` by streaming strips of rows from every raster, several passes, never the
/// whole raster in memory: one pass for counts and moments, then exact quantiles by narrowing
/// histograms until at most `collectLimit` candidate values per quantile remain, which are sorted.
public struct Evaluator {
    public var prediction: String
    public var truth: String
    public var initial: String?
    /// Pixels where this raster is nodata or 0 are left out.
    public var mask: String?
    public var classMask: String?
    public var classThreshold: Double
    /// Sets of pixels (of the truth's whole grid) reported on their own too.
    public var groups: [PixelGroup] = []
    /// Only the pixels of this window count (all of the grid when nil).
    public var window: PixelWindow?
    public var collectLimit = 1 << 20
    public var stripRows = 256

    public init(prediction: String, truth: String, initial: String? = nil, mask: String? = nil,
                classMask: String? = nil, classThreshold: Double = 0.5) {
        self.prediction = prediction
        self.truth = truth
        self.initial = initial
        self.mask = mask
        self.classMask = classMask
        self.classThreshold = classThreshold
    }

    public func run() throws -> Evaluation { try Evaluator.pooled([self]) }

    /// One evaluation of the pixels of several evaluations taken together (e.g. a run's test
    /// scenes), exact as if they were one raster: every part gives an initial DSM or none does,
    /// and likewise a mask and a class raster (with one threshold).
    public static func pooled(_ parts: [Evaluator]) throws -> Evaluation {
        precondition(!parts.isEmpty, "an evaluation needs a prediction")
        let head = parts[0]
        precondition(parts.allSatisfy { ($0.initial == nil, $0.mask == nil, $0.classMask == nil, $0.classThreshold)
                         == (head.initial == nil, head.mask == nil, head.classMask == nil, head.classThreshold)
                         && $0.groups.map(\.name) == head.groups.map(\.name) },
                     "pooled evaluations take the same rasters and groups")
        let source = try PixelErrors(parts)
        let series = source.series
        let collectLimit = head.collectLimit
        var moments = [Moments](repeating: Moments(), count: series.count)
        try source.stream { s, e in moments[s].add(e) }
        for (s, m) in moments.enumerated() where m.count == 0 && series[s].group == .all {
            throw DataError(parts.count == 1 ? head.prediction : "\(parts.count) predictions",
                            "no pixel is valid in the prediction, the truth\(head.initial == nil ? "" : ", the initial DSM")\(head.mask == nil ? "" : " and the mask") at once")
        }
        // Pass group 1: median(e) and LE90 (|e|); group 2: median(|e − median|), which needs the first.
        var searches: [QuantileSearch] = []
        for (s, m) in moments.enumerated() where m.count > 0 {
            searches += QuantileSearch.make(series: s, transform: .identity, q: 0.5, count: m.count, low: m.min, high: m.max)
            searches += QuantileSearch.make(series: s, transform: .absolute, q: 0.9, count: m.count, low: 0, high: max(-m.min, m.max))
        }
        let first = try QuantileSearch.solve(searches, source: source, limit: collectLimit)
        var medians = [Double](repeating: 0, count: series.count), le90 = medians
        for (s, m) in moments.enumerated() where m.count > 0 {
            medians[s] = QuantileSearch.value(first, series: s, transform: .identity, q: 0.5, count: m.count)
            le90[s] = QuantileSearch.value(first, series: s, transform: .absolute, q: 0.9, count: m.count)
        }
        searches = []
        for (s, m) in moments.enumerated() where m.count > 0 {
            searches += QuantileSearch.make(series: s, transform: .deviation(medians[s]), q: 0.5, count: m.count,
                                            low: 0, high: max(medians[s] - m.min, m.max - medians[s]))
        }
        let second = try QuantileSearch.solve(searches, source: source, limit: collectLimit)

        func metrics(_ s: Int) -> ErrorMetrics {
            let m = moments[s]
            let n = Double(m.count)
            let mad = m.count > 0 ? QuantileSearch.value(second, series: s, transform: .deviation(medians[s]), q: 0.5, count: m.count) : .nan
            return ErrorMetrics(count: m.count, bias: m.sum / n, mae: m.sumAbs / n, rmse: (m.sumSquares / n).squareRoot(),
                                median: m.count > 0 ? medians[s] : .nan, nmad: 1.4826 * mad, le90: m.count > 0 ? le90[s] : .nan)
        }
        func pair(_ group: PixelErrors.Group) -> MetricsPair? {
            guard let refined = series.firstIndex(where: { $0.group == group && !$0.initial }) else { return nil }
            let initial = series.firstIndex(where: { $0.group == group && $0.initial })
            return MetricsPair(refined: metrics(refined), initial: initial.map(metrics))
        }
        return Evaluation(all: pair(.all)!, inside: pair(.inside), outside: pair(.outside),
                          groups: head.groups.isEmpty ? nil
                            : head.groups.indices.map { GroupMetrics(name: head.groups[$0].name, metrics: pair(.group($0))!) })
    }
}

private struct Moments {
    var count = 0
    var sum = 0.0, sumAbs = 0.0, sumSquares = 0.0
    var min = Double.infinity, max = -Double.infinity

    mutating func add(_ e: Double) {
        count &+= 1
        sum += e
        sumAbs += abs(e)
        sumSquares += e * e
        if e < min { min = e }
        if e > max { max = e }
    }
}

/// The errors of every series (refined/initial × all/inside/outside/each group) pixel by pixel,
/// read strip by strip.
final class PixelErrors {
    enum Group: Equatable { case all, inside, outside, group(Int) }
    struct Series { let initial: Bool; let group: Group }

    let series: [Series]
    private let parts: [Part]
    private let threshold: Float
    private let stripRows: Int

    /// The rasters of one evaluation and the window of them that counts.
    private struct Part {
        let prediction: Raster, truth: Raster
        let initial: Raster?, mask: Raster?, classes: Raster?
        let window: PixelWindow
        let groups: [PixelGroup]
    }

    init(_ evaluations: [Evaluator]) throws {
        parts = try evaluations.map { options in
            let prediction = try Raster(path: options.prediction)
            let truth = try Raster(path: options.truth)
            let initial = try options.initial.map { try Raster(path: $0) }
            let mask = try options.mask.map { try Raster(path: $0) }
            let classes = try options.classMask.map { try Raster(path: $0) }
            for raster in [prediction, initial, mask, classes].compactMap({ $0 }) {
                if let difference = raster.grid.difference(from: truth.grid) {
                    throw DataError(raster.path, "grid differs from the truth \(URL(fileURLWithPath: truth.path).lastPathComponent): \(difference)")
                }
            }
            let window = try (options.window ?? PixelWindow(x: 0, y: 0, width: truth.grid.width, height: truth.grid.height))
                .checked(in: truth.grid, path: options.truth)
            for group in options.groups where (group.width, group.height) != (truth.grid.width, truth.grid.height) {
                throw DataError(options.truth, "group '\(group.name)' is \(group.width)×\(group.height) px, the truth \(truth.grid.width)×\(truth.grid.height)")
            }
            return Part(prediction: prediction, truth: truth, initial: initial, mask: mask, classes: classes, window: window,
                        groups: options.groups)
        }
        threshold = Float(evaluations[0].classThreshold)
        stripRows = max(1, evaluations[0].stripRows)
        var series: [Series] = []
        let groups = (evaluations[0].classMask == nil ? [Group.all] : [.all, .inside, .outside])
            + evaluations[0].groups.indices.map { Group.group($0) }
        for group in groups {
            series.append(Series(initial: false, group: group))
            if evaluations[0].initial != nil { series.append(Series(initial: true, group: group)) }
        }
        self.series = series
    }

    /// Calls `visit(series, e)` for every usable pixel of every series, part after part.
    func stream(_ visit: (Int, Double) -> Void) throws {
        for part in parts { try stream(part, visit) }
    }

    private func stream(_ part: Part, _ visit: (Int, Double) -> Void) throws {
        let (prediction, truth, initial, mask, classes, window) = (part.prediction, part.truth, part.initial, part.mask, part.classes, part.window)
        let width = window.width, height = window.height
        let n = min(stripRows, height) * width
        var p = [Float](repeating: 0, count: n), t = p
        var i0 = initial == nil ? [] : p, m = mask == nil ? [] : p, c = classes == nil ? [] : p
        let refinedAll = series.firstIndex { $0.group == .all && !$0.initial }!
        let initialAll = series.firstIndex { $0.group == .all && $0.initial }
        let inside = series.indices.filter { series[$0].group == .inside }
        let outside = series.indices.filter { series[$0].group == .outside }
        let grouped = part.groups.indices.map { g in series.indices.filter { series[$0].group == .group(g) } }
        let gridWidth = truth.grid.width
        var y = 0
        while y < height {
            let rows = min(stripRows, height - y)
            func load(_ raster: Raster?, _ buffer: inout [Float]) throws {
                guard let raster else { return }
                try buffer.withUnsafeMutableBufferPointer { try raster.read(x: window.x, y: window.y + y, width: width, height: rows, into: $0.baseAddress!) }
            }
            try load(prediction, &p); try load(truth, &t); try load(initial, &i0); try load(mask, &m); try load(classes, &c)
            for i in 0..<rows * width {
                if p[i].isNaN || t[i].isNaN { continue }
                if initial != nil, i0[i].isNaN { continue }
                if mask != nil, m[i].isNaN || m[i] == 0 { continue }
                let truthValue = Double(t[i])
                let refined = Double(p[i]) - truthValue
                let start = initial.map { _ in Double(i0[i]) - truthValue }
                visit(refinedAll, refined)
                if let initialAll, let start { visit(initialAll, start) }
                if classes != nil, !c[i].isNaN {
                    for s in c[i] > threshold ? inside : outside { visit(s, series[s].initial ? start! : refined) }
                }
                if !grouped.isEmpty {
                    let pixel = (window.y &+ y &+ i / width) &* gridWidth &+ window.x &+ i % width
                    for (g, members) in grouped.enumerated() where part.groups[g].contains(pixel) {
                        for s in members { visit(s, series[s].initial ? start! : refined) }
                    }
                }
            }
            y += rows
        }
    }
}

/// An exact order statistic found by successive histograms: each pass either bins the values still
/// in question (narrowing to the bin that holds the rank) or, once few enough remain, collects them.
struct QuantileSearch {
    enum Transform: Equatable {
        case identity, absolute, deviation(Double)

        func apply(_ e: Double) -> Double {
            switch self {
            case .identity: return e
            case .absolute: return abs(e)
            case .deviation(let center): return abs(e - center)
            }
        }
    }

    struct Key: Hashable { let series: Int; let transform: String; let rank: Int }

    let series: Int
    let transform: Transform
    let rank: Int
    /// Bins chosen so far: a value is still a candidate when it falls in each of them.
    var path: [(low: Double, high: Double, bin: Int)] = []
    var low: Double, high: Double
    var below = 0, remaining: Int
    var result: Double?

    static let bins = 4096

    static func make(series: Int, transform: Transform, q: Double, count: Int, low: Double, high: Double) -> [QuantileSearch] {
        ranks(q: q, count: count).map {
            QuantileSearch(series: series, transform: transform, rank: $0, low: low, high: high, remaining: count)
        }
    }

    static func ranks(q: Double, count: Int) -> [Int] {
        let position = q * Double(count - 1)
        let lower = Int(position.rounded(.down))
        return lower + 1 < count && position > Double(lower) ? [lower, lower + 1] : [lower]
    }

    static func bin(_ v: Double, _ low: Double, _ high: Double) -> Int {
        guard high > low else { return 0 }
        return min(bins - 1, max(0, Int((v - low) / (high - low) * Double(bins))))
    }

    static func solve(_ initial: [QuantileSearch], source: PixelErrors, limit: Int) throws -> [Key: Double] {
        var searches = initial
        while searches.contains(where: { $0.result == nil }) {
            // Every unfinished search either collects (few candidates left) or histograms. The
            // state the per-pixel loop reads is copied into flat arrays first: this loop runs once
            // per pixel and series.
            var bySeries = [[Int]](repeating: [], count: source.series.count)
            for k in searches.indices where searches[k].result == nil { bySeries[searches[k].series].append(k) }
            let transforms = searches.map(\.transform), paths = searches.map(\.path)
            let lows = searches.map(\.low), highs = searches.map(\.high)
            let collecting = searches.map { $0.remaining <= limit }
            var histogram = [Int](repeating: 0, count: searches.count * bins)
            var collected = searches.map { _ in [Double]() }
            try source.stream { s, e in
                for k in bySeries[s] {
                    let v = transforms[k].apply(e)
                    var inside = true
                    for step in paths[k] where QuantileSearch.bin(v, step.low, step.high) != step.bin { inside = false; break }
                    guard inside else { continue }
                    if collecting[k] { collected[k].append(v) } else { histogram[k &* bins &+ bin(v, lows[k], highs[k])] &+= 1 }
                }
            }
            for k in searches.indices where searches[k].result == nil {
                if collecting[k] {
                    collected[k].sort()
                    searches[k].result = collected[k][searches[k].rank - searches[k].below]
                    continue
                }
                var before = searches[k].below
                var chosen = 0
                for b in 0..<bins {
                    if before + histogram[k * bins + b] > searches[k].rank { chosen = b; break }
                    before += histogram[k * bins + b]
                }
                let (low, high) = (searches[k].low, searches[k].high)
                let width = (high - low) / Double(bins)
                searches[k].path.append((low, high, chosen))
                searches[k].below = before
                searches[k].remaining = histogram[k * bins + chosen]
                searches[k].low = low + Double(chosen) * width
                searches[k].high = low + Double(chosen + 1) * width
                // A bin narrower than the values' resolution holds one distinct value.
                if searches[k].high - searches[k].low <= max(abs(searches[k].low), abs(searches[k].high)) * 1e-14 {
                    searches[k].result = searches[k].low
                }
            }
        }
        var results: [Key: Double] = [:]
        for s in searches { results[Key(series: s.series, transform: "\(s.transform)", rank: s.rank)] = s.result! }
        return results
    }

    /// The q-quantile from solved order statistics, interpolated linearly.
    static func value(_ results: [Key: Double], series: Int, transform: Transform, q: Double, count: Int) -> Double {
        let position = q * Double(count - 1)
        let r = ranks(q: q, count: count)
        let a = results[Key(series: series, transform: "\(transform)", rank: r[0])]!
        guard r.count == 2 else { return a }
        let b = results[Key(series: series, transform: "\(transform)", rank: r[1])]!
        return a + (b - a) * (position - Double(r[0]))
    }
}
