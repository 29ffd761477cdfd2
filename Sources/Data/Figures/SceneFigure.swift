import Foundation

/// A PNG panel of a scene like DeepDEM's figures: the orthos, NDVI, `nodata_mask`, the initial
/// DSM, the lidar truth and the refined DSM (coloured heights on a shared scale over their
/// hillshade), and the error maps before and after refinement on one diverging scale,
/// ±(the 98th percentile of |initial error|) rounded up to a round number, with colour bars.
/// Large windows are reduced by block averages to about `panelSize` pixels a side (errors are
/// taken at full resolution first); small ones are enlarged by whole pixels.
public struct SceneFigure: Sendable {
    public var data: String
    public var refined: String?
    /// A σ raster (TTA's standard deviation), drawn last on a sequential scale from 0.
    public var uncertainty: String?
    /// `lidar_data` or `lidar_dtm_data`; by default the first of them the scene has.
    public var target: String?
    /// Pixels of the scene to show; the whole scene by default.
    public var window: PixelWindow?
    public var panelSize = 360
    public var columns = 3

    public init(data: String) {
        self.data = data
    }

    static let missing: PNGImage.RGB = (60, 60, 60)
    static let heightStops: [PNGImage.RGB] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
    static let errorStops: [PNGImage.RGB] = [(33, 102, 172), (103, 169, 207), (247, 247, 247), (239, 138, 98), (178, 24, 43)]
    static let ndviStops: [DEMRendering.Stop] = [(-0.2, (120, 80, 40)), (0, (200, 180, 140)), (0.2, (190, 210, 120)),
                                                  (0.5, (80, 160, 60)), (0.8, (20, 90, 30))]

    struct Panel {
        let title: String
        /// A second title line (the error maps' MAE).
        var detail: String? = nil
        let rgb: [UInt8]
        let bar: (stops: [DEMRendering.Stop], labels: [String])?
    }

    /// Writes the figure to `png` (through a temporary name) and says what it shows.
    @discardableResult
    public func write(to png: String, overwrite: Bool = false) throws -> FigureSummary {
        try RasterWriter.checkDestination(png, overwrite: overwrite)
        let present = Set(Scene.bandsPresent(in: data))
        let inputs = [Band.aspDSM] + [Band.ortho1, Band.ortho2, Band.ndvi].filter(present.contains)
        let targetBand = target ?? Band.targets.first(where: present.contains)
        let scene = try Scene(folder: data, bands: inputs, target: targetBand)
        let refinedRaster = try refined.map { try Raster(path: $0) }
        let sigmaRaster = try uncertainty.map { try Raster(path: $0) }
        for raster in [refinedRaster, sigmaRaster].compactMap({ $0 }) {
            if let difference = raster.grid.difference(from: scene.grid) {
                throw DataError(raster.path, "grid differs from \(URL(fileURLWithPath: scene.aspDSM.path).lastPathComponent): \(difference)")
            }
        }
        let window = try (self.window ?? PixelWindow(x: 0, y: 0, width: scene.grid.width, height: scene.grid.height))
            .checked(in: scene.grid, path: data)
        let factor = max(1, Int((Double(max(window.width, window.height)) / Double(max(1, panelSize))).rounded()))

        // Rasters read together, and where each lands in the strips.
        var rasters = [scene.aspDSM]
        var slot: [String: Int] = [Band.aspDSM: 0]
        for band in inputs.dropFirst() { slot[band] = rasters.count; rasters.append(scene.input(band)!) }
        if let mask = scene.nodataMask { slot[Band.nodataMask] = rasters.count; rasters.append(mask) }
        if let truth = scene.targetFile { slot["truth"] = rasters.count; rasters.append(truth) }
        if let refinedRaster { slot["refined"] = rasters.count; rasters.append(refinedRaster) }
        if let sigmaRaster { slot["sigma"] = rasters.count; rasters.append(sigmaRaster) }

        var before = ErrorSums(), after = ErrorSums()
        let reduced = try BlockAverage.reduce(rasters, window: window, factor: factor) { strips, count in
            var layers = strips
            guard let t = slot["truth"] else { return layers }
            var errorBefore = [Float](repeating: .nan, count: count), errorAfter = errorBefore
            let initial = strips[0], truth = strips[t]
            let mask = slot[Band.nodataMask].map { strips[$0] }, refined = slot["refined"].map { strips[$0] }
            for i in 0..<count {
                if initial[i].isNaN || truth[i].isNaN { continue }
                if let mask, !(mask[i] >= 0.5) { continue }
                if let refined {
                    if refined[i].isNaN { continue }
                    errorAfter[i] = refined[i] - truth[i]
                    after.add(errorAfter[i])
                }
                errorBefore[i] = initial[i] - truth[i]
                before.add(errorBefore[i])
            }
            layers.append(errorBefore)
            if refined != nil { layers.append(errorAfter) }
            return layers
        }
        let w = reduced.width, h = reduced.height
        let planes = reduced.layers
        guard planes[0].contains(where: { !$0.isNaN }) else {
            throw DataError(scene.aspDSM.path, "has no valid pixel in the \(window.width)×\(window.height) px window at (\(window.x), \(window.y))")
        }

        let pixel = abs(scene.grid.geoTransform[1]) * Double(factor) * DEMRendering.metresPerUnit(scene.grid.crsWKT)
        var panels: [Panel] = []
        for (band, title) in [(Band.ortho1, "ortho 1"), (Band.ortho2, "ortho 2")] {
            guard let s = slot[band] else { continue }
            panels.append(Panel(title: title, rgb: SceneFigure.grey(planes[s]), bar: nil))
        }
        if let s = slot[Band.ndvi] {
            panels.append(Panel(title: "NDVI", rgb: try DEMRendering.colorRelief(planes[s], width: w, height: h, stops: SceneFigure.ndviStops,
                                                                                missing: SceneFigure.missing),
                                bar: (SceneFigure.ndviStops, ["-0.2", "0.3", "0.8"])))
        }
        if let s = slot[Band.nodataMask] {
            let rgb = planes[s].flatMap { v -> [UInt8] in
                let g = v.isNaN ? SceneFigure.missing.0 : UInt8(40 + 205 * min(1, max(0, v)))
                return [g, g, g]
            }
            panels.append(Panel(title: "nodata mask", rgb: rgb, bar: nil))
        }

        let heights = slot["truth"].map { planes[$0] } ?? planes[0]
        var (low, high) = SceneFigure.percentiles(heights, 2, 98)
        if !(high > low) { (low, high) = (low - 1, low + 1) }
        let heightStops = SceneFigure.stops(SceneFigure.heightStops, from: low, to: high)
        let heightLabels = [SceneFigure.label(low) + " m", SceneFigure.label(high) + " m"]
        func surface(_ plane: [Float], _ title: String) throws -> Panel {
            let color = try DEMRendering.colorRelief(plane, width: w, height: h, stops: heightStops, missing: SceneFigure.missing)
            let shade = try DEMRendering.hillshade(plane, width: w, height: h, pixelSize: pixel)
            var rgb = color
            for i in 0..<(w * h) where !plane[i].isNaN {
                let light = 0.35 + 0.65 * Float(shade[i]) / 255
                for c in 0..<3 { rgb[i &* 3 &+ c] = UInt8(min(255, Float(color[i &* 3 &+ c]) * light)) }
            }
            return Panel(title: title, rgb: rgb, bar: (heightStops, heightLabels))
        }
        panels.append(try surface(planes[0], "initial DSM"))
        if let s = slot["truth"] { panels.append(try surface(planes[s], targetBand == Band.lidarDTM ? "lidar DTM" : "lidar DSM")) }
        if let s = slot["refined"] { panels.append(try surface(planes[s], "refined DSM")) }

        var scale: Double?
        if slot["truth"] != nil {
            let errorsBefore = planes[rasters.count]
            let magnitude = SceneFigure.percentiles(errorsBefore.map { abs($0) }, 98, 98).0
            let s = SceneFigure.roundUp(magnitude.isFinite && magnitude > 0 ? Double(magnitude) : 1)
            scale = s
            let stops = SceneFigure.stops(SceneFigure.errorStops, from: -Float(s), to: Float(s))
            let labels = ["-" + SceneFigure.label(Float(s)), "0", "+" + SceneFigure.label(Float(s)) + " m"]
            let maps = [("error before", errorsBefore, before)] + (slot["refined"] != nil ? [("error after", planes[rasters.count + 1], after)] : [])
            for (title, plane, sums) in maps {
                let rgb = try DEMRendering.colorRelief(plane, width: w, height: h, stops: stops, missing: SceneFigure.missing)
                let detail = sums.count > 0 ? String(format: "MAE %.2f m", sums.mae) : nil
                panels.append(Panel(title: title, detail: detail, rgb: rgb, bar: (stops, labels)))
            }
        }

        if let s = slot["sigma"] {
            let high = SceneFigure.roundUp(Double(max(SceneFigure.percentiles(planes[s], 98, 98).0, 1e-3)))
            let stops = SceneFigure.stops(SceneFigure.heightStops, from: 0, to: Float(high))
            panels.append(Panel(title: "TTA std dev",
                                rgb: try DEMRendering.colorRelief(planes[s], width: w, height: h, stops: stops, missing: SceneFigure.missing),
                                bar: (stops, ["0", SceneFigure.label(Float(high)) + " m"])))
        }

        let name = URL(fileURLWithPath: data).lastPathComponent
        let header = "\(name): \(window.width)×\(window.height) px at (\(window.x), \(window.y))"
            + (factor > 1 ? ", 1:\(factor)" : "")
        let image = try SceneFigure.layout(panels, planeWidth: w, planeHeight: h, panelSize: panelSize, columns: columns, header: header)
        try image.write(to: png, overwrite: overwrite)
        return FigureSummary(width: image.width, height: image.height, panels: panels.map(\.title), errorScale: scale,
                             maeBefore: before.count > 0 ? before.mae : nil, maeAfter: after.count > 0 ? after.mae : nil,
                             compared: before.count)
    }

    /// Panels in rows of `columns`: a title above each, a colour bar with its labels below.
    static func layout(_ panels: [Panel], planeWidth w: Int, planeHeight h: Int, panelSize: Int, columns: Int, header: String) throws -> PNGImage {
        let zoom = max(1, panelSize / max(w, h))
        let panelWidth = w * zoom, panelHeight = h * zoom
        let margin = 16, gap = 20, barHeight = 40, headerHeight = 30
        let titleHeight = panels.contains { $0.detail != nil } ? 42 : 24
        let cellWidth = max(panelWidth, 160), cellHeight = titleHeight + panelHeight + barHeight
        let cols = max(1, min(columns, panels.count)), rows = (panels.count + cols - 1) / cols
        var image = PNGImage(width: 2 * margin + cols * cellWidth + (cols - 1) * gap,
                             height: 2 * margin + headerHeight + rows * cellHeight + (rows - 1) * gap)
        func write(_ text: String, x: Int, y: Int, room: Int) {
            let scale = BitmapFont.textWidth(text, scale: 2) <= room ? 2 : 1
            image.text(text, x: x, y: y, scale: scale)
        }
        write(header, x: margin, y: margin, room: image.width - 2 * margin)
        for (k, panel) in panels.enumerated() {
            let x = margin + (k % cols) * (cellWidth + gap)
            let y = margin + headerHeight + (k / cols) * (cellHeight + gap)
            write(panel.title, x: x, y: y + 4, room: cellWidth)
            if let detail = panel.detail { write(detail, x: x, y: y + 22, room: cellWidth) }
            image.blit(panel.rgb, width: w, height: h, scale: zoom, x: x, y: y + titleHeight)
            guard let bar = panel.bar else { continue }
            let barY = y + titleHeight + panelHeight + 6
            let colors = try DEMRendering.colorBar(width: panelWidth, stops: bar.stops)
            for dy in 0..<10 { image.blit(colors, width: panelWidth, height: 1, scale: 1, x: x, y: barY + dy) }
            // Labels spread under the bar; smaller, then only the ends, when they would touch.
            var labels = bar.labels
            var scale = 2
            func fits() -> Bool {
                labels.map { BitmapFont.textWidth($0, scale: scale) + 3 * BitmapFont.advance * scale }.reduce(0, +) <= panelWidth
            }
            if !fits() { scale = 1 }
            if !fits(), labels.count > 2 { labels = [labels.first!, labels.last!] }
            for (j, label) in labels.enumerated() {
                let width = BitmapFont.textWidth(label, scale: scale)
                let lx = labels.count == 1 ? x : x + (panelWidth - width) * j / (labels.count - 1)
                image.text(label, x: lx, y: barY + 14, scale: scale)
            }
        }
        return image
    }

    /// Colours spread evenly from `from` to `to`.
    static func stops(_ colors: [PNGImage.RGB], from: Float, to: Float) -> [DEMRendering.Stop] {
        colors.enumerated().map { k, color in
            (Double(from) + Double(to - from) * Double(k) / Double(colors.count - 1), color)
        }
    }

    /// A plane in grey, its 1st–99th percentile stretched to black–white.
    static func grey(_ plane: [Float]) -> [UInt8] {
        let (low, high) = percentiles(plane, 1, 99)
        let scale = high > low ? 255 / (high - low) : 0
        var rgb = [UInt8](repeating: 0, count: plane.count * 3)
        for i in 0..<plane.count {
            let g = plane[i].isNaN ? missing.0 : UInt8(min(255, max(0, (plane[i] - low) * scale)))
            rgb[i &* 3] = g; rgb[i &* 3 &+ 1] = g; rgb[i &* 3 &+ 2] = g
        }
        return rgb
    }

    /// Two percentiles of the valid values (NaN when there are none).
    static func percentiles(_ values: [Float], _ a: Double, _ b: Double) -> (Float, Float) {
        let valid = values.filter { !$0.isNaN }.sorted()
        guard !valid.isEmpty else { return (.nan, .nan) }
        func at(_ p: Double) -> Float { valid[min(valid.count - 1, Int(p / 100 * Double(valid.count - 1)))] }
        return (at(a), at(b))
    }

    /// The smallest of 1, 2, 2.5, 5 × 10^k that is at least `x`.
    static func roundUp(_ x: Double) -> Double {
        let power = pow(10, (log10(x)).rounded(.down))
        for step in [1, 2, 2.5, 5, 10] where step * power >= x * (1 - 1e-9) { return step * power }
        return 10 * power
    }

    static func label(_ v: Float) -> String {
        let a = abs(v)
        let text = a >= 100 ? String(format: "%.0f", v) : a >= 10 ? String(format: "%.1f", v) : String(format: "%.2f", v)
        return text.contains(".") ? String(text.reversed().drop { $0 == "0" }.reversed()).trimmingCharacters(in: CharacterSet(charactersIn: ".")) : text
    }
}

/// What a figure shows.
public struct FigureSummary: Sendable {
    public let width: Int
    public let height: Int
    public let panels: [String]
    /// The error maps' scale, ± metres.
    public let errorScale: Double?
    /// Mean absolute error of the initial and refined DSM over the compared pixels (full resolution).
    public let maeBefore: Double?
    public let maeAfter: Double?
    /// Pixels where the errors were taken (valid in every compared raster and in `nodata_mask`).
    public let compared: Int
}

struct ErrorSums {
    var count = 0
    var absolute = 0.0

    mutating func add(_ e: Float) {
        count &+= 1
        absolute += Double(abs(e))
    }

    var mae: Double { absolute / Double(count) }
}
