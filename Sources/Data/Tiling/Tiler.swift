import Foundation
import Primitives

/// Tiled inference over a whole scene with memory bounded by one strip of tiles: overlapping tiles
/// (stride ≤ chip size, the last row and column aligned to the scene's edge so every pixel is
/// covered), predictions blended with a separable raised-cosine weight that falls towards each tile's
/// edge (floored at `edgeWeight` so the scene's own border pixels still count), nodata wherever
/// `asp_dsm` is nodata, the input's georeferencing, written via a temporary file.
public struct Tiler {
    public var chipSize: Int
    public var stride: Int
    public var batchSize: Int
    public var format: RasterWriter.Format
    public var overwrite: Bool
    /// Weight of a tile's outermost pixels relative to its centre.
    public var edgeWeight: Double = 1e-3
    /// Threads that blend the predicted tiles and that GDAL may compress the output's blocks on
    /// while the tiles go on: the refinement's own, not every core of the machine.
    public var threads = 1
    /// Metadata items of the output besides `Provenance.process` (what made the heights).
    public var metadata: [String: String] = [:]
    /// Several processes refining one scene; nil for one.
    public var ranks: Ranks?

    /// Tile row r is predicted by rank r mod `size`; `gather(row, owner)` moves a row's predictions
    /// from its owner to rank 0 (it sends on the owner, receives on rank 0), which alone blends
    /// them, in order, and writes the output: the same bytes as one process.
    public struct Ranks {
        public let rank: Int, size: Int
        public let gather: (UnsafeMutableBufferPointer<Float>, _ owner: Int) throws -> Void

        public init(rank: Int, size: Int, gather: @escaping (UnsafeMutableBufferPointer<Float>, _ owner: Int) throws -> Void) {
            self.rank = rank
            self.size = size
            self.gather = gather
        }
    }
    /// The model's standardization of the ortho bands, applied to each tile as to training chips.
    public var orthoStandardization = OrthoStandardization.none

    public init(chipSize: Int, stride: Int? = nil, batchSize: Int = 8, format: RasterWriter.Format = .geoTIFF, overwrite: Bool = false) {
        self.chipSize = chipSize
        self.stride = stride ?? max(1, chipSize / 2)
        self.batchSize = batchSize
        self.format = format
        self.overwrite = overwrite
    }

    /// Tile origins along an axis of `length` pixels.
    public static func origins(length: Int, chip: Int, stride: Int) -> [Int] {
        var origins: [Int] = []
        var p = 0
        while p + chip < length { origins.append(p); p += stride }
        origins.append(length - chip)
        return origins
    }

    /// `predict(inputs, count, outputs)` gets `count` ≤ `batchSize` chips as [count×C×H×W] (the scene's
    /// bands, nodata filled as for training) and writes the refined heights [count×H×W].
    /// `progress` receives the finished fraction after each row of tiles.
    public func run(scene: Scene, output path: String,
                    predict: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) throws -> Void,
                    progress: ((Double) -> Void)? = nil) throws {
        try run(scene: scene, outputs: [path], predict: predict, progress: progress)
    }

    /// As `run(scene:output:…)` with one GeoTIFF per layer the model predicts (refined heights,
    /// then e.g. their standard deviation): `predict` writes [layers×count×H×W], each layer blended
    /// with the same weights and written with the DSM's nodata. The first output's path names
    /// errors of the tiling.
    public func run(scene: Scene, outputs paths: [String],
                    predict: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) throws -> Void,
                    progress: ((Double) -> Void)? = nil) throws {
        precondition(!paths.isEmpty, "Tiler.run needs an output")
        let path = paths[0], layers = paths.count
        let width = scene.grid.width, height = scene.grid.height, chip = chipSize
        guard chip > 0, stride > 0, stride <= chip, batchSize > 0 else {
            throw DataError(path, "bad tiling: chip \(chip), stride \(stride) (1…chip), batch \(batchSize)")
        }
        guard chip <= width, chip <= height else {
            throw DataError(scene.aspDSM.path, "chip of \(chip) px is larger than the \(width)×\(height) px scene")
        }
        guard try scene.aspDSM.hasValidPixel() else {
            throw DataError(scene.aspDSM.path, "has no valid pixel (all nodata): nothing to refine")
        }
        let nodata = scene.aspDSM.nodata ?? -Double(Float.greatestFiniteMagnitude)
        let rank = ranks?.rank ?? 0, size = ranks?.size ?? 1
        let rows = Tiler.origins(length: height, chip: chip, stride: stride)
        guard rows.count >= size else {
            throw DataError(path, "\(size) ranks for \(rows.count) rows of tiles: every rank needs a row; run at most \(rows.count)")
        }
        // Only rank 0 writes.
        let writers = rank != 0 ? [] : try paths.map {
            try RasterWriter(path: $0, grid: scene.grid, nodata: nodata, format: format, overwrite: overwrite,
                             threads: threads, metadata: metadata)
        }
        // GDAL's block cache need only hold the rows of blocks the current strip of tiles touches,
        // in every band read and in the output (256-row blocks); left at the process default it
        // fills with the decoded scene as the strips go by (~250 MB more at 4096² × 6 bands).
        let previousBudget = GDAL.cacheBudget
        defer { GDAL.setCacheBudget(bytes: previousBudget) }
        if getenv("GDAL_CACHEMAX") == nil {
            let rasters = scene.inputs + [scene.nodataMask].compactMap { $0 }
            let read = rasters.reduce(0) { $0 + (chip / $1.blockHeight + 2) * $1.blockRowBytes }
            let needed = read + layers * (chip / 256 + 2) * 256 * width * 4 + (16 << 20)
            if needed < previousBudget { GDAL.setCacheBudget(bytes: needed) }
        }
        let columns = Tiler.origins(length: width, chip: chip, stride: stride)
        let channels = scene.bands.count
        let plane = chip * chip
        let window = tileWeights(chip)

        var sum = [Double](repeating: 0, count: layers * chip * width)
        var weight = [Double](repeating: 0, count: chip * width)
        var batchInputs = [Float](repeating: 0, count: batchSize * channels * plane)
        var finishedRows = 0
        var aspRows = [Float](repeating: 0, count: stride * width)
        var outputRows = [Float](repeating: 0, count: chip * width)

        func flush(rows count: Int) throws {
            guard count > 0 else { return }
            if aspRows.count < count * width { aspRows = [Float](repeating: 0, count: count * width) }
            try aspRows.withUnsafeMutableBufferPointer {
                try scene.aspDSM.read(x: 0, y: finishedRows, width: width, height: count, into: $0.baseAddress!)
            }
            for (l, writer) in writers.enumerated() {
                let layer = l * chip * width
                for i in 0..<count * width {
                    outputRows[i] = aspRows[i].isNaN || weight[i] == 0 ? .nan : Float(sum[layer + i] / weight[i])
                }
                try outputRows.withUnsafeBufferPointer {
                    try writer.write(x: 0, y: finishedRows, width: width, height: count, from: $0.baseAddress!)
                }
            }
            // Shift the accumulators up by the rows just written.
            let keep = chip * width - count * width
            sum.withUnsafeMutableBufferPointer { s in
                for l in 0..<layers {
                    let layer = s.baseAddress! + l * chip * width
                    layer.update(from: layer + count * width, count: keep)
                    (layer + keep).update(repeating: 0, count: count * width)
                }
            }
            weight.withUnsafeMutableBufferPointer { w in
                w.baseAddress!.update(from: w.baseAddress! + count * width, count: keep)
                (w.baseAddress! + keep).update(repeating: 0, count: count * width)
            }
            finishedRows += count
        }

        // A row's predictions, batch after batch, each batch [layers×count×H×W] as `predict` wrote it.
        var rowOutputs = [Float](repeating: 0, count: layers * columns.count * plane)
        let batches = Swift.stride(from: 0, to: columns.count, by: batchSize).map { $0..<min($0 + batchSize, columns.count) }

        /// Adds a batch's tiles into the accumulators. Split by tile row: the accumulators' rows
        /// are disjoint, and each element still takes the tiles in order.
        func blend(_ batch: Range<Int>) {
            let parts = min(chip, max(1, threads)), tiles = Array(columns[batch]), count = batch.count
            sum.withUnsafeMutableBufferPointer { s in
                weight.withUnsafeMutableBufferPointer { wsum in
                    rowOutputs.withUnsafeBufferPointer { o in
                        window.withUnsafeBufferPointer { wnd in
                            let p = Unchecked((s.baseAddress!, wsum.baseAddress!, o.baseAddress! + batch.lowerBound * layers * plane, wnd.baseAddress!))
                            DispatchQueue.concurrentPerform(iterations: parts) { part in
                                let (sum, weight, outputs, window) = p.value
                                for y in (chip * part / parts)..<(chip * (part + 1) / parts) {
                                    let wy = window[y]
                                    for (b, x0) in tiles.enumerated() {
                                        let row = y &* width &+ x0, out = b &* plane &+ y &* chip
                                        for x in 0..<chip {
                                            let w = wy * window[x]
                                            weight[row &+ x] += w
                                            for l in 0..<layers {
                                                sum[l &* chip &* width &+ row &+ x] += w * Double(outputs[l &* count &* plane &+ out &+ x])
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        // Tile row r is rank (r mod size)'s; rank 0 blends every row, in order, and writes. Rows
        // above a tile row are flushed before its tiles are blended, so the accumulators start at
        // the tile row's top. The rank's next strip is read while this one's tiles are predicted;
        // GDAL is touched by one thread at a time (the read ends before the next flush).
        let mine = rows.indices.filter { $0 % size == rank }
        let strips = [WindowPlanes(scene: scene), WindowPlanes(scene: scene)]
        let fill = NodataFill(bands: scene.bands, orthos: orthoStandardization)
        if let first = mine.first { try strips[0].load(x: 0, y: rows[first], width: width, height: chip, withTarget: false) }
        var k = 0
        for (r, top) in rows.enumerated() {
            let owner = r % size
            if owner == rank {
                let strip = strips[k % 2]
                let next = k + 1 < mine.count ? StripRead(strips[(k + 1) % 2], y: rows[mine[k + 1]], width: width, height: chip) : nil
                defer { next?.join() }
                for batch in batches {
                    // Each batch's tiles copied out of the strip concurrently.
                    batchInputs.withUnsafeMutableBufferPointer { buffer in
                        let p = Unchecked((buffer.baseAddress!, strip, Array(columns[batch])))
                        DispatchQueue.concurrentPerform(iterations: batch.count) { i in
                            let (inputs, strip, tiles) = p.value
                            Tiler.extract(strip, x0: tiles[i], chip: chip, fill: fill, into: inputs + i * channels * plane)
                        }
                    }
                    try batchInputs.withUnsafeBufferPointer { input in
                        try rowOutputs.withUnsafeMutableBufferPointer { output in
                            try predict(input.baseAddress!, batch.count, output.baseAddress! + batch.lowerBound * layers * plane)
                        }
                    }
                }
                try next?.wait()
                k += 1
            }
            if let ranks, owner != 0, rank == 0 || rank == owner {
                try rowOutputs.withUnsafeMutableBufferPointer { try ranks.gather($0, owner) }
            }
            guard rank == 0 else { continue }
            try flush(rows: top - finishedRows)
            for batch in batches { blend(batch) }
            progress?(Double(r + 1) / Double(rows.count))
        }
        guard rank == 0 else { return }
        try flush(rows: height - finishedRows)
        for writer in writers { try writer.commit() }
    }

    /// Raised cosine over the tile, floored at `edgeWeight`.
    private func tileWeights(_ chip: Int) -> [Double] {
        (0..<chip).map { i in
            max(edgeWeight, 0.5 - 0.5 * cos(2 * Double.pi * (Double(i) + 0.5) / Double(chip)))
        }
    }

    /// Copies one tile out of the strip, its nodata filled (and orthos standardized) per tile by
    /// `fill` as training chips are.
    private static func extract(_ strip: WindowPlanes, x0: Int, chip: Int, fill: NodataFill, into destination: UnsafeMutablePointer<Float>) {
        let width = strip.width
        let plane = chip &* chip
        for c in 0..<strip.inputs.count {
            let to = destination + c &* plane
            strip.inputs[c].withUnsafeBufferPointer { source in
                for y in 0..<chip {
                    let from: UnsafePointer<Float> = source.baseAddress! + (y &* width &+ x0)
                    (to + y &* chip).update(from: from, count: chip)
                }
            }
        }
        fill.inputs { c, body in body(UnsafeMutableBufferPointer(start: destination + c &* plane, count: plane)) }
    }
}

/// One strip read on another thread; `wait` rethrows its error.
private final class StripRead: @unchecked Sendable {
    private let done = DispatchGroup()
    private var error: Error?

    init(_ strip: WindowPlanes, y: Int, width: Int, height: Int) {
        let strip = Unchecked(strip)
        done.enter()
        DispatchQueue.global().async { [self] in
            do { try strip.value.load(x: 0, y: y, width: width, height: height, withTarget: false) } catch { self.error = error }
            done.leave()
        }
    }

    func join() { done.wait() }

    func wait() throws {
        join()
        if let error { throw error }
    }
}

/// Raw pointers and buffers handed to other threads, which touch disjoint parts of them.
private struct Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
