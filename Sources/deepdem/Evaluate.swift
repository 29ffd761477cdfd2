import ArgumentParser
import Data
import Foundation
import Primitives

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

    @Flag(help: ArgumentHelp(
        "Co-register the initial DSM and the prediction to the truth (Nuth & Kääb 2011) before the statistics.",
        discussion: "Each is shifted (dx, dy east and north in metres, dz up) by the iterated fit of dh/tan(slope) against aspect, "
            + "slope and aspect of the truth by Horn's method as gdaldem computes them, on pixels steeper than 1°, "
            + "until the shift changes by less than 0.01 px or after 10 iterations."))
    var coregister = false

    @Option(help: "Stable terrain for --coregister: only pixels where this raster is valid and non-zero take part in the fit.")
    var stable: String?

    @Option(name: .customLong("by-slope"), help: ArgumentHelp(
        "Slope bin edges in degrees, increasing, e.g. 0,5,10,20,30,40: one row per bin (the last open-ended), slope of the truth (Horn).",
        valueName: "edges"))
    var bySlope: String?

    @Option(help: "An integer class raster on the truth's grid (e.g. NLCD land cover): one row per class.")
    var classes: String?

    @Option(name: .customLong("class-names"), help: "Names of the --classes codes: one 'CODE NAME' per line.")
    var classNames: String?

    @Option(parsing: .number, help: "Grow each --classes mask by this many pixels (e.g. to count building edges).")
    var dilate = 0

    @Option(help: ArgumentHelp("A per-pixel uncertainty of the prediction (refine --uncertainty): how well it ranks the error, "
                               + "as Spearman's correlation of σ with |error| and the MAE in each σ quintile.", valueName: "SIGMA.tif"))
    var sigma: String?

    @Option(help: ArgumentHelp("Write a Markdown report: the tables, the co-registration, and the error maps as a PNG beside it (REPORT.png).",
                               valueName: "REPORT.md"))
    var report: String?

    @Flag(help: "Replace an existing --report and its PNG.")
    var overwrite = false

    @Flag(help: "Print JSON instead of a table (with the window evaluated, if --region or --window).")
    var json = false

    func run() throws {
        guarded {
            if stable != nil && !coregister { throw CLIError("--stable chooses the pixels of --coregister's fit: give --coregister too") }
            if (classNames != nil || dilate != 0) && classes == nil { throw CLIError("--class-names and --dilate describe --classes: give --classes too") }
            guard dilate >= 0 else { throw CLIError("--dilate \(dilate): must be 0 or more pixels") }
            let edges = try bySlope.map(parseEdges)
            let figure = try report.map { path -> String in
                guard path.hasSuffix(".md") else { throw CLIError("--report \(path): must name a Markdown file (.md)") }
                let png = String(path.dropLast(3)) + ".png"
                try RasterWriter.checkDestination(path, overwrite: overwrite)
                try RasterWriter.checkDestination(png, overwrite: overwrite)
                return png
            }
            var evaluator = Evaluator(prediction: prediction, truth: truth, initial: initial, mask: mask,
                                      classMask: byMask, classThreshold: threshold)
            evaluator.window = try chosenWindow()
            var shifts: [(String, Coregistration)] = []
            var scratch: URL?
            defer { if let scratch { try? FileManager.default.removeItem(at: scratch) } }
            if coregister || edges != nil || classes != nil {
                let truthRaster = try Raster(path: truth)
                let grid = truthRaster.grid
                let ew = abs(grid.geoTransform[1]), ns = abs(grid.geoTransform[5])
                func onGrid(_ path: String) throws -> Raster {
                    let raster = try Raster(path: path)
                    if let difference = raster.grid.difference(from: grid) {
                        throw DataError(path, "grid differs from the truth \(URL(fileURLWithPath: truth).lastPathComponent): \(difference)")
                    }
                    return raster
                }
                let truthValues = try truthRaster.readAll()
                let terrain = coregister || edges != nil
                    ? Terrain(heights: truthValues, width: grid.width, height: grid.height, ew: ew, ns: ns) : nil
                if coregister, let terrain {
                    let stableMask = try stable.map { try onGrid($0).readAll().map { !$0.isNaN && $0 != 0 } }
                    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("deepdem-coregister-\(getpid())")
                    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                    scratch = folder
                    for (name, path) in [("initial", initial), ("refined", prediction)] {
                        guard let path else { continue }
                        let values = try onGrid(path).readAll()
                        let shift = try Coregistration.estimate(dem: values, truth: truthValues, terrain: terrain, stable: stableMask,
                                                                ew: ew, ns: ns, path: path)
                        shifts.append((name, shift))
                        let moved = folder.appendingPathComponent("\(name).tif").path
                        try RasterWriter.write(shift.applied(to: values, width: grid.width, height: grid.height, ew: ew, ns: ns),
                                               grid: grid, nodata: nil, to: moved)
                        if name == "initial" { evaluator.initial = moved } else { evaluator.prediction = moved }
                    }
                }
                if let edges, let terrain { evaluator.groups += PixelGroups.slopeBins(terrain, edges: edges) }
                if let classes {
                    let names = try classNames.map(PixelGroups.classNames) ?? [:]
                    evaluator.groups += try PixelGroups.classes(try onGrid(classes).readAll(), width: grid.width, height: grid.height,
                                                                names: names, dilate: dilate, path: classes).map(\.group)
                }
            }
            let evaluation = try evaluator.run()
            // σ belongs to the prediction as refine wrote it, not to a co-registered copy.
            let check = try sigma.map { try UncertaintyCheck.run(prediction: prediction, truth: truth, sigma: $0, mask: mask, window: evaluator.window) }
            if let report, let figure {
                var maps = ErrorMapFigure(truth: truth, initial: evaluator.initial, refined: evaluator.prediction)
                maps.window = evaluator.window
                maps.note = shifts.isEmpty ? "" : "(co-registered)"
                try maps.write(to: figure, title: URL(fileURLWithPath: prediction).lastPathComponent + " against "
                               + URL(fileURLWithPath: truth).lastPathComponent, overwrite: overwrite)
                try StagedOutput.write(Data(markdown(evaluation, shifts: shifts, check: check, figure: figure).utf8), to: report)
            }
            print(json ? jsonText(evaluation, window: evaluator.window, shifts: shifts, check: check)
                       : table(evaluation, shifts: shifts, check: check))
        }
    }

    func parseEdges(_ text: String) throws -> [Double] {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0!.isFinite && $0! >= 0 && $0! < 90 }) else {
            throw CLIError("--by-slope \(text): must be slopes in degrees in [0, 90) separated by commas, e.g. 0,5,10,20,30,40")
        }
        let edges = values.map { $0! }
        guard zip(edges, edges.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw CLIError("--by-slope \(text): the bin edges must increase")
        }
        return edges
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

    func jsonText(_ e: Evaluation, window: PixelWindow?, shifts: [(String, Coregistration)], check: UncertaintyCheck?) -> String {
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
        if !shifts.isEmpty {
            text += ",\n  \"coregistration\": {\n" + shifts.map { name, c in
                "    \(quoted(name)): {\"dx\": \(number(c.dx)), \"dy\": \(number(c.dy)), \"dz\": \(number(c.dz)), "
                    + "\"iterations\": \(c.iterations), \"pixels\": \(c.pixels)}"
            }.joined(separator: ",\n") + "\n  }"
        }
        if let check, let sigma {
            text += ",\n  \"uncertainty\": {\"file\": \(quoted(sigma)), \"count\": \(check.count), \"spearman\": \(number(check.spearman)), "
                + "\"quintiles\": [" + check.quintiles.map {
                    "{\"sigma_low\": \(number($0.sigmaLow)), \"sigma_high\": \(number($0.sigmaHigh)), \"count\": \($0.count), \"mae\": \(number($0.mae))}"
                }.joined(separator: ", ") + "]}"
        }
        if let groups = e.groups {
            text += ",\n  \"groups\": [\n" + groups.map { g in
                "    {\n      \"name\": \(quoted(g.name)),\n\(pair(g.metrics, indent: "      "))\n    }"
            }.joined(separator: ",\n") + "\n  ]"
        }
        return text + "\n}"
    }

    func table(_ e: Evaluation, shifts: [(String, Coregistration)], check: UncertaintyCheck?) -> String {
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
        for g in e.groups ?? [] { add(g.name, g.metrics) }
        var tail: [String] = []
        if let check {
            tail.append(String(format: "uncertainty: Spearman ρ(σ, |error|) %.3f over %d px; MAE by σ quintile:", check.spearman, check.count))
            tail += alignedLines([["σ from", "σ to", "count", "mae"]] + check.quintiles.map {
                [String(format: "%.3f", $0.sigmaLow), String(format: "%.3f", $0.sigmaHigh), "\($0.count)", String(format: "%.3f", $0.mae)]
            })
        }
        var out = shifts.map { name, c in
            String(format: "co-registered %@: dx %+.3f m, dy %+.3f m, dz %+.3f m (Nuth & Kääb, %d iterations, %d px)",
                   name, c.dx, c.dy, c.dz, c.iterations, c.pixels)
        }
        out += alignedLines([header] + rows)
        if byMask != nil { out.append("inside: \(byMask!) > \(threshold); metres; the % line is the change of MAE") }
        else if e.all.initial != nil { out.append("metres; the % line is the change of MAE") }
        return (out + tail).joined(separator: "\n")
    }

    /// The report: what was compared, the shifts, one table per kind of rows, the error maps.
    func markdown(_ e: Evaluation, shifts: [(String, Coregistration)], check: UncertaintyCheck?, figure: String) -> String {
        var lines = ["# Evaluation of `\(prediction)`", ""]
        lines.append("- truth: `\(truth)`")
        if let initial { lines.append("- initial DSM: `\(initial)`") }
        if let mask { lines.append("- mask: `\(mask)`") }
        if let window = try? chosenWindow() { lines.append("- window: \(window.width)×\(window.height) px at (\(window.x), \(window.y))") }
        lines.append("- deepdem \(BuildInfo.version) (commit \(BuildInfo.commit)): `\(Provenance.process[Provenance.prefix + "COMMAND"] ?? "")`")
        lines.append("")
        if !shifts.isEmpty {
            lines += ["## Co-registration", "",
                      "Nuth & Kääb (2011) against the truth; slope and aspect of the truth (Horn)"
                        + (stable.map { ", stable terrain from `\($0)`" } ?? "") + ". The statistics are those of the moved DSMs.", "",
                      "| DSM | dx east (m) | dy north (m) | dz (m) | iterations | pixels |", "|---|---:|---:|---:|---:|---:|"]
            for (name, c) in shifts {
                lines.append(String(format: "| %@ | %+.3f | %+.3f | %+.3f | %d | %d |", name, c.dx, c.dy, c.dz, c.iterations, c.pixels))
            }
            lines.append("")
        }
        func section(_ title: String, _ rows: [(String, MetricsPair)]) {
            guard !rows.isEmpty else { return }
            lines += ["## \(title)", "", "| pixels | DSM | count | bias | MAE | RMSE | median | NMAD | LE90 | MAE change |",
                      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for (name, p) in rows {
                for (which, m) in [("initial", p.initial), ("refined", p.refined)] {
                    guard let m else { continue }
                    let change = which == "refined" && p.initial.map { $0.mae > 0 } == true
                        ? String(format: "%+.1f %%", 100 * (m.mae / p.initial!.mae - 1)) : ""
                    lines.append("| \(name) | \(which) | \(m.count) | " + [m.bias, m.mae, m.rmse, m.median, m.nmad, m.le90]
                        .map { String(format: "%.3f", $0) }.joined(separator: " | ") + " | \(change) |")
                }
            }
            lines.append("")
        }
        var overall = [("all", e.all)]
        if let inside = e.inside, let outside = e.outside { overall += [("inside", inside), ("outside", outside)] }
        section("Overall (metres)", overall)
        let groups = e.groups ?? []
        section("By slope", groups.filter { $0.name.hasPrefix("slope ") }.map { ($0.name, $0.metrics) })
        section("By class" + (dilate > 0 ? " (each grown by \(dilate) px)" : ""),
                groups.filter { !$0.name.hasPrefix("slope ") }.map { ($0.name, $0.metrics) })
        if let check, let sigma {
            lines += ["## Uncertainty", "", String(format: "`%@`: Spearman ρ(σ, |error|) = %.3f over %d px.", sigma, check.spearman, check.count), "",
                      "| σ quintile | σ from (m) | σ to (m) | pixels | MAE (m) |", "|---:|---:|---:|---:|---:|"]
            for (k, q) in check.quintiles.enumerated() {
                lines.append(String(format: "| %d | %.3f | %.3f | %d | %.3f |", k + 1, q.sigmaLow, q.sigmaHigh, q.count, q.mae))
            }
            lines.append("")
        }
        lines += ["## Error maps", "", "![error maps](\(URL(fileURLWithPath: figure).lastPathComponent))", ""]
        return lines.joined(separator: "\n")
    }

    func row(_ name: String, _ m: ErrorMetrics) -> [String] {
        [name, "\(m.count)"] + [m.bias, m.mae, m.rmse, m.median, m.nmad, m.le90].map { String(format: "%.3f", $0) }
    }
}
