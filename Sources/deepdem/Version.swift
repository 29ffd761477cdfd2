import CBuildInfo
import Data
import Distributed
import NN

/// What `deepdem --version` prints: what a bug report needs, and what a cluster's modules must
/// match (the MPI whose ABI the binary was compiled for; OpenBLAS's kernels differ in their last
/// bits, README "The same bits").
enum BuildInfo {
    /// The release: written here only; tools/dist.sh names the bundle after what the binary prints.
    static let version = "0.1.0"
    static var commit: String { String(cString: deepdem_build_commit()) }

    static var text: String {
        """
        deepdem \(version) (commit \(commit))
        MPI: built for \(MPILibrary.builtFor)
        OpenBLAS: \(BLAS.coreName) kernels
        """
    }
}

extension DeepDEM {
    /// Every raster a command writes names this build and the command line (`Provenance`).
    static func main() {
        Provenance.process = Provenance.command(version: BuildInfo.version, commit: BuildInfo.commit,
                                                arguments: CommandLine.arguments)
        main(nil)
    }
}
