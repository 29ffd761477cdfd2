import ArgumentParser

@main
struct DeepDEM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deepdem",
        abstract: "Refine stereo DSMs with a U-Net trained against lidar, on CPUs, over MPI.",
        version: BuildInfo.text,
        subcommands: [Train.self, Refine.self, Info.self, Prepare.self, Synth.self, Stats.self, Evaluate.self, Figure.self, Summary.self]
    )
}

extension SingleValueParsingStrategy {
    /// For numeric options: the next argument is the value even when it starts with a dash, so
    /// `--stride -3` reaches the option's own range check instead of reading as a missing value
    /// followed by an unknown flag `-3`.
    static var number: SingleValueParsingStrategy { .unconditional }
}
