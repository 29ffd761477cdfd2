import CBuildInfo
import Distributed
import NN

/// What `deepdem --version` prints: what a bug report needs, and what a cluster's modules must
/// match (the MPI whose ABI the binary was compiled for; OpenBLAS's kernels differ in their last
/// bits, README "The same bits").
enum BuildInfo {
    /// The release: written here only; tools/dist.sh names the bundle after what the binary prints.
    static let version = "0.1.0"

    static var text: String {
        """
        deepdem \(version) (commit \(String(cString: deepdem_build_commit())))
        MPI: built for \(MPILibrary.builtFor)
        OpenBLAS: \(BLAS.coreName) kernels
        """
    }
}
