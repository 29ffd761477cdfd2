import ArgumentParser
import NN

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what a checkpoint holds.")

    @Argument(help: "A .safetensors checkpoint.")
    var checkpoint: String

    func run() throws {
        print("BLAS kernel: \(BLAS.coreName)")
    }
}
