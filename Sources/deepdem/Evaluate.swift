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

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        guarded {
            let evaluation = try Evaluator(prediction: prediction, truth: truth, initial: initial, mask: mask,
                                           classMask: byMask, classThreshold: threshold).run()
            print(json ? jsonText(evaluation) : table(evaluation))
        }
    }

    func jsonText(_ e: Evaluation) -> String {
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
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, cell in
                c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                       : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ")
        }
        var out = [line(header)] + rows.map(line)
        if byMask != nil { out.append("inside: \(byMask!) > \(threshold); metres; the % line is the change of MAE") }
        else if e.all.initial != nil { out.append("metres; the % line is the change of MAE") }
        return out.joined(separator: "\n")
    }

    func row(_ name: String, _ m: ErrorMetrics) -> [String] {
        [name, "\(m.count)"] + [m.bias, m.mae, m.rmse, m.median, m.nmad, m.le90].map { String(format: "%.3f", $0) }
    }
}
