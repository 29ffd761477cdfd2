import ArgumentParser
import Data

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Global scale factor per chip size and per-band statistics of a scene, as JSON.")

    @Option(help: "Scene folder of final_<band>.tif.")
    var data: String

    @Option(name: .customLong("chip-sizes"), parsing: .upToNextOption,
            help: "Chip sizes for the gsf (default: 64 128 256 512 1024, those that fit the scene).")
    var chipSizes: [Int] = []

    @Option(parsing: .number, help: "Random chips per size.")
    var chips = 256

    @Option(parsing: .number, help: "Seed of the chip positions.")
    var seed: UInt64 = 0

    func run() throws {
        guarded {
            guard chips > 0 else { throw CLIError("--chips must be positive") }
            // Opening the scene first reports a missing folder or band before any work.
            let grid = try Scene(folder: data, bands: [Band.aspDSM], target: nil).grid
            let fits = min(grid.width, grid.height)
            var sizes = chipSizes
            if sizes.isEmpty { sizes = Statistics.defaultChipSizes.filter { $0 <= fits } }
            if let size = sizes.first(where: { $0 < 2 || $0 > fits }) {
                throw CLIError("\(Scene.file(data, Band.aspDSM)): chip size \(size) px does not fit the \(grid.width)×\(grid.height) px scene (2…\(fits))")
            }
            let statistics = try ProgressLine("stats").run { progress in
                try Statistics.scene(folder: data, chipSizes: sizes, chips: chips, seed: seed, progress: progress)
            }
            print(json(statistics, sizes: sizes))
        }
    }

    /// Written by hand to keep a reader-friendly key order (sizes ascending, asp_dsm first).
    func json(_ s: SceneStatistics, sizes: [Int]) -> String {
        let gsf = sizes.sorted().map { "    \"\($0)\": \(number(s.gsf[String($0)]))" }.joined(separator: ",\n")
        let order = s.bands.keys.sorted { ($0 == Band.aspDSM ? "" : $0) < ($1 == Band.aspDSM ? "" : $1) }
        let bands = order.map { name in
            let b = s.bands[name]!
            return "    \"\(name)\": {\"mean\": \(number(b.mean)), \"std\": \(number(b.std)), \"min\": \(number(b.min)), "
                + "\"max\": \(number(b.max)), \"valid_fraction\": \(number(b.validFraction))}"
        }.joined(separator: ",\n")
        return "{\n  \"scene\": \(quoted(data)),\n  \"width\": \(s.width),\n  \"height\": \(s.height),\n"
            + "  \"gsf\": {\n\(gsf)\n  },\n  \"bands\": {\n\(bands)\n  }\n}"
    }
}

/// A JSON number (null for a missing or non-finite value).
func number(_ value: Double?) -> String {
    guard let value, value.isFinite else { return "null" }
    return "\(value)"
}

func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
