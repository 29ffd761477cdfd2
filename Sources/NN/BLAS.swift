import CBLAS

/// The process's compute threads and the OpenBLAS kernel family picked for this CPU.
///
/// `threads` are the layers' threads (see `Parallel`): OpenBLAS runs single-threaded inside
/// them, so its own thread count stays 1 once a network has run or `setThreads` was called.
public enum BLAS {
    public static func setThreads(_ n: Int) { Parallel.setWorkers(n) }
    public static var threads: Int { Parallel.workers }
    public static var coreName: String { String(cString: openblas_get_corename()) }
}
