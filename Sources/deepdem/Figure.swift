import ArgumentParser
import Data
import Foundation
import Primitives

struct Figure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a PNG panel of a scene: orthos, NDVI, nodata mask, initial/truth/refined DSM, error maps before/after.",
        discussion: """
            Heights share one colour scale (the truth's 2nd–98th percentile) over their hillshade; \
            the error maps (DSM − truth, over pixels valid everywhere and in nodata_mask) share a \
            diverging scale of ±(98th percentile of |initial error|), rounded up. Panels of large \
            windows are block averages; errors and MAE are taken at full resolution first.
            """)

    @Option(help: "Scene folder of final_<band>.tif.")
    var data: String

    @Option(help: "A refined DSM on the scene's grid (e.g. from deepdem refine).")
    var refined: String?

    @Option(help: "A per-pixel uncertainty on the scene's grid (refine --tta --uncertainty): one more panel, σ in metres.")
    var uncertainty: String?

    @Option(help: "Truth band: lidar_data or lidar_dtm_data (default: the first the scene has).")
    var target: String?

    @Option(help: "PNG to write.")
    var out = "figure.png"

    @Option(help: "Pixel window x,y,width,height of the scene (default: all of it).")
    var window: String?

    @Option(name: .customLong("panel-size"), parsing: .number, help: "Panel size in pixels (long side).")
    var panelSize = 360

    @Option(parsing: .number, help: "Panels per row.")
    var columns = 3

    @Flag(help: "Replace an existing --out.")
    var overwrite = false

    func run() throws {
        guarded {
            if let target, !Band.targets.contains(target) {
                throw CLIError("--target must be \(Band.targets.joined(separator: " or ")) (got \(target))")
            }
            guard (64...4096).contains(panelSize) else { throw CLIError("--panel-size must be between 64 and 4096 (got \(panelSize))") }
            guard (1...12).contains(columns) else { throw CLIError("--columns must be between 1 and 12 (got \(columns))") }
            PartialFiles.removeOnSignals()
            try InputGuard.check(files: [out], reading: InputGuard.sceneFiles(data) + [refined, uncertainty].compactMap { $0 })
            var figure = SceneFigure(data: data)
            figure.refined = refined
            figure.uncertainty = uncertainty
            figure.target = target
            figure.panelSize = panelSize
            figure.columns = columns
            figure.window = try window.map(parseWindow)
            let summary = try figure.write(to: out, overwrite: overwrite)
            var line = "wrote \(out): \(summary.width)×\(summary.height) px, \(summary.panels.count) panels"
            if let scale = summary.errorScale { line += String(format: "; error scale ±%g m", scale) }
            if let before = summary.maeBefore { line += String(format: "; MAE initial %.3f m", before) }
            if let after = summary.maeAfter { line += String(format: ", refined %.3f m", after) }
            if summary.errorScale != nil { line += " over \(summary.compared) px" }
            print(line)
        }
    }
}
