import CGDAL

/// Process-wide GDAL setup. Drivers register once; GDAL's own messages never reach the terminal
/// (the library does not print), they are captured per call and returned inside `DataError`s.
public enum GDAL {
    private static let registered: Bool = {
        GDALAllRegister()
        CPLSetErrorHandler(CPLQuietErrorHandler)
        return true
    }()

    static func ensureRegistered() { _ = registered }

    /// Bounds the memory GDAL keeps for decoded blocks. Training reads many small windows from
    /// large compressed scenes; the cache avoids decoding a block once per window, the budget keeps
    /// that cache from growing to GDAL's default of 5 % of RAM per process (times the ranks).
    public static func setCacheBudget(bytes: Int) {
        ensureRegistered()
        GDALSetCacheMax64(GIntBig(bytes))
    }

    public static var cacheBudget: Int {
        ensureRegistered()
        return Int(GDALGetCacheMax64())
    }

    public static var version: String {
        ensureRegistered()
        return String(cString: GDALVersionInfo("RELEASE_NAME"))
    }

    /// Runs `body` with GDAL's error stack of this thread silenced and reset, and turns a failure
    /// into a `DataError` carrying GDAL's last message.
    static func call<T>(_ path: String, _ what: String, _ body: () -> T?) throws -> T {
        ensureRegistered()
        CPLErrorReset()
        CPLPushErrorHandler(CPLQuietErrorHandler)
        let result = body()
        CPLPopErrorHandler()
        if let result { return result }
        throw DataError(path, "\(what): \(lastMessage(or: "GDAL reported no reason"))")
    }

    static func check(_ path: String, _ what: String, _ body: () -> CPLErr) throws {
        try call(path, what) { body() == CE_None ? () : nil }
    }

    static func lastMessage(or fallback: String) -> String {
        guard let message = CPLGetLastErrorMsg(), message.pointee != 0 else { return fallback }
        return String(cString: message).split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
