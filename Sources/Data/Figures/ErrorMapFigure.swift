import Foundation

/// The error maps of an evaluation (`deepdem evaluate --report`): initial − truth and refined −
/// truth on one diverging scale as `SceneFigure` draws them, after co-registration when the
/// evaluation moved the DSMs (the rasters given are then the moved ones).
public struct ErrorMapFigure: Sendable {
    public var truth: String
    public var initial: String?
    public var refined: String
    /// Added to each panel's title, e.g. "(co-registered)".
    public var note = ""
    public var window: PixelWindow?
    public var panelSize = 360

    public init(truth: String, initial: String?, refined: String) {
        self.truth = truth
        self.initial = initial
        self.refined = refined
    }

    @discardableResult
    public func write(to png: String, title: String, overwrite: Bool = false) throws -> FigureSummary {
        try RasterWriter.checkDestination(png, overwrite: overwrite)
        let truthRaster = try Raster(path: truth)
        let rasters = [truthRaster, try Raster(path: refined)] + (try initial.map { [try Raster(path: $0)] } ?? [])
        for raster in rasters.dropFirst() {
            if let difference = raster.grid.difference(from: truthRaster.grid) { throw DataError(raster.path, "grid differs from the truth: \(difference)") }
        }
        let window = try (self.window ?? PixelWindow(x: 0, y: 0, width: truthRaster.grid.width, height: truthRaster.grid.height))
            .checked(in: truthRaster.grid, path: truth)
        let factor = max(1, Int((Double(max(window.width, window.height)) / Double(max(1, panelSize))).rounded()))
        var sums = [ErrorSums](repeating: ErrorSums(), count: rasters.count - 1)
        let reduced = try BlockAverage.reduce(rasters, window: window, factor: factor) { strips, count in
            (1..<strips.count).map { k in
                var errors = [Float](repeating: .nan, count: count)
                for i in 0..<count where !strips[0][i].isNaN && !strips[k][i].isNaN && (strips.count < 3 || !strips[2][i].isNaN) {
                    errors[i] = strips[k][i] - strips[0][i]
                    sums[k - 1].add(errors[i])
                }
                return errors
            }
        }
        // The initial DSM's errors set the scale when there is one, as in `deepdem figure`.
        let reference = reduced.layers[reduced.layers.count - 1]
        let magnitude = SceneFigure.percentiles(reference.map { abs($0) }, 98, 98).0
        let scale = SceneFigure.roundUp(magnitude.isFinite && magnitude > 0 ? Double(magnitude) : 1)
        let stops = SceneFigure.stops(SceneFigure.errorStops, from: -Float(scale), to: Float(scale))
        let labels = ["-" + SceneFigure.label(Float(scale)), "0", "+" + SceneFigure.label(Float(scale)) + " m"]
        var panels: [SceneFigure.Panel] = []
        for k in (0..<reduced.layers.count).reversed() {
            let rgb = try DEMRendering.colorRelief(reduced.layers[k], width: reduced.width, height: reduced.height,
                                                   stops: stops, missing: SceneFigure.missing)
            let name = k == 0 ? "refined" : "initial"
            panels.append(SceneFigure.Panel(title: "error \(name) \(note)".trimmingCharacters(in: .whitespaces),
                                            detail: sums[k].count > 0 ? String(format: "MAE %.2f m", sums[k].mae) : nil,
                                            rgb: rgb, bar: (stops, labels)))
        }
        let header = title + (factor > 1 ? ", 1:\(factor)" : "")
        let image = try SceneFigure.layout(panels, planeWidth: reduced.width, planeHeight: reduced.height, panelSize: panelSize,
                                           columns: panels.count, header: header)
        try image.write(to: png, overwrite: overwrite)
        return FigureSummary(width: image.width, height: image.height, panels: panels.map(\.title), errorScale: scale,
                             maeBefore: initial == nil ? nil : sums[1].mae, maeAfter: sums[0].mae, compared: sums[0].count)
    }
}
