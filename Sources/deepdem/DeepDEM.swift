import ArgumentParser

@main
struct DeepDEM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deepdem",
        abstract: "Refine stereo DSMs with a U-Net trained against lidar, on CPUs, over MPI.",
        subcommands: [Train.self, Refine.self, Info.self, Prepare.self, Synth.self, Stats.self, Evaluate.self, Figure.self]
    )
}
