import CMPI
import Foundation

/// Which MPI this binary is for and which one it runs on. Both may be asked before `MPI_Init`,
/// so a mismatch can be told before a launcher's ranks each start as a singleton.
public enum MPILibrary {
    /// The MPI the binary was compiled against ("Open MPI 4.1.4", "MPICH 4.0.2"): its ABI.
    public static var builtFor: String { String(cString: deepdem_mpi_built_for()) }

    /// The first line of `MPI_Get_library_version`: the library the loader found.
    public static func loaded() -> String {
        var text = [CChar](repeating: 0, count: Int(deepdem_mpi_max_library_version_string()) + 1)
        var length: Int32 = 0
        guard MPI_Get_library_version(&text, &length) == MPI_SUCCESS else { return builtFor }
        let all = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let first = all.split(whereSeparator: \.isNewline).first.map(String.init) ?? all
        return first.trimmingCharacters(in: .whitespaces)
    }
}
