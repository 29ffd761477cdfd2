import ArgumentParser
import Data

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a synthetic scene with every band (lidar truth included), for demos and tests.")

    @Option(help: "Scene folder to create (its parent must exist).")
    var out: String

    @Option(parsing: .number, help: "Width and height in pixels (1 m each).")
    var size = 512

    @Option(parsing: .number, help: "Random seed; the same seed gives the same scene.")
    var seed: UInt64 = 0

    @Flag(help: "Replace the bands of an existing scene in that folder.")
    var overwrite = false

    func run() throws {
        guarded {
            guard size >= 16, size <= 100_000 else { throw CLIError("--size must be between 16 and 100000 (got \(size))") }
            try ProgressLine("synth").run { progress in
                try SyntheticScene(width: size, height: size, seed: seed).write(to: out, overwrite: overwrite, progress: progress)
            }
            print("wrote \(out): \(SyntheticScene.bands.count) bands, \(size)×\(size) px, EPSG:\(SyntheticScene.epsg), seed \(seed)")
        }
    }
}
