import ArgumentParser
import Data
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accuracy of a DSM against truth: count, bias, MAE, RMSE, median, NMAD, LE90 (initial and refined).")

    @Option(help: "The refined DSM (GeoTIFF).")
    var prediction: String

    @Option(help: "The truth (lidar DSM or DTM) on the same grid.")
    var truth: String

    @Option(help: "The initial DSM (asp_dsm), evaluated over the same pixels.")
    var initial: String?

    @Option(help: "Only pixels where this raster is valid and non-zero count.")
    var mask: String?

    @Option(name: .customLong("by-mask"), help: "A class raster (e.g. NDVI): metrics inside (value > threshold) and outside too.")
    var byMask: String?

    @Option(parsing: .number, help: "Threshold of --by-mask (e.g. 0.3 for NDVI vegetation).")
    var threshold = 0.5

    @Option(help: ArgumentHelp(
        "Only this part of the grid: left, right, top or bottom, and the fraction of the x or y extent, in whole pixels rounded down.",
        discussion: "right:0.2 is the right 20 % of the columns (a held-out part of train_split 0.8).",
        valueName: "side:fraction"))
    var region: String?

    @Option(help: "Only this pixel window x,y,width,height of the grid.")
    var window: String?

    @Flag(help: "Print JSON instead of a table (with the window evaluated, if --region or --window).")
    var json = false

    func run() throws {
        guarded {
            var evaluator = Evaluator(prediction: prediction, truth: truth, initial: initial, mask: mask,
                                      classMask: byMask, classThreshold: threshold)
            evaluator.window = try chosenWindow()
            let evaluation = try evaluator.run()
            print(json ? jsonText(evaluation, window: evaluator.window) : table(evaluation))
        }
    }

    /// The window --region or --window names, in pixels of the truth's grid; nil for all of it.
    func chosenWindow() throws -> PixelWindow? {
        if region != nil && window != nil { throw CLIError("--region and --window both choose the pixels: give one of them") }
        if let window { return try parseWindow(window) }
        guard let region else { return nil }
        let parts = region.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let fraction = Double(parts[1]), fraction > 0, fraction <= 1,
              ["left", "right", "top", "bottom"].contains(parts[0]) else {
            throw CLIError("--region must be left, right, top or bottom and a fraction in (0, 1], e.g. right:0.2 (got \(region))")
        }
        let grid = try Raster(path: truth).grid
        let side = String(parts[0])
        let extent = side == "left" || side == "right" ? grid.width : grid.height
        let n = Int((Double(extent) * fraction).rounded(.down))
        guard n > 0 else { throw CLIError("--region \(region): not one whole pixel of the \(grid.width)×\(grid.height) px grid") }
        switch side {
        case "left": return PixelWindow(x: 0, y: 0, width: n, height: grid.height)
        case "right": return PixelWindow(x: grid.width - n, y: 0, width: n, height: grid.height)
        case "top": return PixelWindow(x: 0, y: 0, width: grid.width, height: n)
        default: return PixelWindow(x: 0, y: grid.height - n, width: grid.width, height: n)
        }
    }

    func jsonText(_ e: Evaluation, window: PixelWindow?) -> String {
        func metrics(_ m: ErrorMetrics) -> String {
            "{\"count\": \(m.count), \"bias\": \(number(m.bias)), \"mae\": \(number(m.mae)), \"rmse\": \(number(m.rmse)), "
                + "\"median\": \(number(m.median)), \"nmad\": \(number(m.nmad)), \"le90\": \(number(m.le90))}"
        }
        func pair(_ p: MetricsPair, indent: String) -> String {
            var lines = ["\(indent)\"refined\": \(metrics(p.refined))"]
            if let initial = p.initial { lines.append("\(indent)\"initial\": \(metrics(initial))") }
            return lines.joined(separator: ",\n")
        }
        var text = "{\n" + pair(e.all, indent: "  ")
        if let w = window {
            text += ",\n  \"window\": {\"x\": \(w.x), \"y\": \(w.y), \"width\": \(w.width), \"height\": \(w.height)}"
        }
        if let inside = e.inside, let outside = e.outside, let byMask {
            text += ",\n  \"by_mask\": {\n    \"file\": \(quoted(byMask)),\n    \"threshold\": \(number(threshold)),\n"
                + "    \"inside\": {\n\(pair(inside, indent: "      "))\n    },\n"
                + "    \"outside\": {\n\(pair(outside, indent: "      "))\n    }\n  }"
        }
        return text + "\n}"
    }

    func table(_ e: Evaluation) -> String {
        let header = ["", "count", "bias", "mae", "rmse", "median", "nmad", "le90"]
        var rows: [[String]] = []
        func add(_ name: String, _ p: MetricsPair) {
            if let initial = p.initial { rows.append(row(name + " initial", initial)) }
            rows.append(row(name + " refined", p.refined))
            if let initial = p.initial, initial.mae > 0 {
                rows.append(["", "", "", String(format: "%+.1f%%", 100 * (p.refined.mae / initial.mae - 1)), "", "", "", ""])
            }
        }
        add("all", e.all)
        if let inside = e.inside, let outside = e.outside {
            add("inside", inside)
            add("outside", outside)
        }
        var out = alignedLines([header] + rows)
        if byMask != nil { out.append("inside: \(byMask!) > \(threshold); metres; the % line is the change of MAE") }
        else if e.all.initial != nil { out.append("metres; the % line is the change of MAE") }
        return out.joined(separator: "\n")
    }

    func row(_ name: String, _ m: ErrorMetrics) -> [String] {
        [name, "\(m.count)"] + [m.bias, m.mae, m.rmse, m.median, m.nmad, m.le90].map { String(format: "%.3f", $0) }
    }
}
