import CGDAL
import Foundation

/// Process-wide GDAL setup. Drivers register once; GDAL's own messages never reach the terminal
/// (the library does not print), they are captured per call and returned inside `DataError`s.
public enum GDAL {
    /// GDAL's own default block cache is 5 % of RAM per process; with one process per rank and
    /// written blocks kept until evicted, that is far more than a strip-by-strip program needs.
    public static let defaultCacheBudget = 256 << 20

    private static let registered: Bool = {
        GDALAllRegister()
        CPLSetErrorHandler(CPLQuietErrorHandler)
        if getenv("GDAL_CACHEMAX") == nil { GDALSetCacheMax64(GIntBig(defaultCacheBudget)) }
        return true
    }()

    static func ensureRegistered() { _ = registered }

    /// Bounds the memory GDAL keeps for decoded blocks (`defaultCacheBudget` unless the
    /// GDAL_CACHEMAX environment variable says otherwise). Training reads many small windows from
    /// large compressed scenes; the cache avoids decoding a block once per window.
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
