import CBLAS

/// The OpenBLAS kernel family picked for this CPU when OpenBLAS loaded (`OPENBLAS_CORETYPE` forces one).
public enum BLAS {
    public static var coreName: String { String(cString: openblas_get_corename()) }
}
