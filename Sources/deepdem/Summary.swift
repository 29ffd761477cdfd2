import ArgumentParser
import Data
import Distributed
import Foundation
import Primitives

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Test metrics of several runs (the folds of a cross-validation) side by side, with their mean and standard deviation.",
        discussion: """
            Each run folder holds the test.json that `deepdem train` writes when a run with test data \
            ends. The table has a column per run (metres, over each run's test pixels), then the mean \
            and the sample standard deviation (n − 1) of the runs' overall metrics.
            """)

    @Argument(help: "Run folders, each with a test.json.")
    var runs: [String]

    @Option(help: "Also write the table as JSON to this file.")
    var json: String?

    @Flag(help: "Replace an existing --json file.")
    var overwrite = false

    func run() {
        guarded {
            let files = runs.map { ($0 as NSString).appendingPathComponent("test.json") }
            if let json {
                try InputGuard.check(files: [json], reading: files)
                if !overwrite, FileManager.default.fileExists(atPath: json) {
                    throw CLIError("\(json): exists (pass --overwrite to replace it)")
                }
            }
            let reports = try zip(runs, files).map { try TestOutcome(run: $0, file: $1) }
            Console.line(table(reports))
            if let json {
                let object = SummaryStatistics(reports).json
                let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                try StagedOutput.write(to: json) { sink in try data.withUnsafeBytes { try sink.write($0) } }
            }
        }
    }

    func table(_ reports: [TestOutcome]) -> String {
        let stats = SummaryStatistics(reports)
        let names = columnNames(reports)
        let header = ["metres"] + names + (reports.count > 1 ? ["mean", "std"] : [])
        var rows: [[String]] = []
        func add(_ name: String, _ values: [Double], format: String = "%.3f") {
            let cells = values.map { String(format: format, $0) }
            // A deviation has no sign to show.
            let spread = reports.count > 1
                ? [String(format: format, mean(values)), String(format: format.replacingOccurrences(of: "+", with: ""), standardDeviation(values))]
                : []
            rows.append([name] + cells + spread)
        }
        add("pixels", reports.map { Double($0.initial.count) }, format: "%.0f")
        for (side, pick) in [("initial", \TestOutcome.initial), ("refined", \TestOutcome.refined)] {
            for metric in SummaryStatistics.metrics {
                add("\(side) \(metric.name)", reports.map { $0[keyPath: pick][keyPath: metric.value] })
            }
        }
        add("mae change %", stats.maeChange.map { 100 * $0 }, format: "%+.1f")
        let sources = reports.map { r in "\(r.run) (step \(r.step)\(r.fold.map { ", fold \($0)" } ?? ""))" }
        return (["\(reports.count) run\(reports.count == 1 ? "" : "s"): " + sources.joined(separator: ", ")]
            + alignedLines([header] + rows)).joined(separator: "\n")
    }

    /// Each run's folder name, or its whole path where two runs share a name.
    func columnNames(_ reports: [TestOutcome]) -> [String] {
        let last = reports.map { ($0.run as NSString).lastPathComponent }
        return Set(last).count == last.count ? last : reports.map(\.run)
    }
}

/// The part of a run's test.json the summary compares: its overall metrics.
struct TestOutcome {
    var run: String
    var step: Int
    var fold: Int?
    var initial: ErrorMetrics
    var refined: ErrorMetrics

    init(run: String, file: String) throws {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw CLIError("\(file): not found (the run has no test data, or has not finished)")
        }
        let report: TestReport
        do {
            report = try JSONDecoder().decode(TestReport.self, from: data)
        } catch {
            throw CLIError("\(file): not a test report of deepdem train (\(error))")
        }
        self.run = run
        step = report.step
        fold = report.fold
        initial = report.overall.initial
        refined = report.overall.refined
    }
}

/// Means and sample standard deviations of the runs' overall metrics.
struct SummaryStatistics {
    static var metrics: [(name: String, value: KeyPath<ErrorMetrics, Double>)] {
        [("bias", \.bias), ("mae", \.mae), ("rmse", \.rmse), ("median", \.median), ("nmad", \.nmad), ("le90", \.le90)]
    }

    let reports: [TestOutcome]
    init(_ reports: [TestOutcome]) { self.reports = reports }

    /// Refined MAE over initial MAE, minus one, per run.
    var maeChange: [Double] { reports.map { $0.refined.mae / $0.initial.mae - 1 } }

    var json: [String: Any] {
        func metrics(_ m: ErrorMetrics) -> [String: Any] {
            var d: [String: Any] = ["count": m.count]
            for metric in Self.metrics { d[metric.name] = m[keyPath: metric.value] }
            return d
        }
        func across(_ statistic: ([Double]) -> Double) -> [String: Any] {
            var out: [String: Any] = ["mae_change": statistic(maeChange)]
            for (side, pick) in [("initial", \TestOutcome.initial), ("refined", \TestOutcome.refined)] {
                var d: [String: Any] = ["count": statistic(reports.map { Double($0[keyPath: pick].count) })]
                for metric in Self.metrics { d[metric.name] = statistic(reports.map { $0[keyPath: pick][keyPath: metric.value] }) }
                out[side] = d
            }
            return out
        }
        var object: [String: Any] = [
            "runs": zip(reports, maeChange).map { r, change in
                ["run": r.run, "step": r.step, "fold": r.fold as Any? ?? NSNull(), "initial": metrics(r.initial),
                 "refined": metrics(r.refined), "mae_change": change] as [String: Any]
            },
            "mean": across(mean),
        ]
        object["std"] = reports.count > 1 ? across(standardDeviation) : NSNull()
        return object
    }
}

func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }

/// The sample standard deviation (n − 1), as cross-validation reports quote it.
func standardDeviation(_ values: [Double]) -> Double {
    let m = mean(values)
    return (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
}
