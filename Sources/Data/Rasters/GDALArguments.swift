import CGDAL

/// A NULL-terminated `char **` list as GDAL's utility functions (gdal_utils.h) take their command
/// line, so the library calls the same code paths as gdalwarp, gdal_translate and gdaldem.
final class GDALArguments {
    private(set) var list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?

    init(_ arguments: [String]) {
        for argument in arguments { list = CSLAddString(list, argument) }
    }

    deinit { CSLDestroy(list) }
}

/// Carries a Swift progress closure through GDAL's C progress callback (`pProgressData`).
final class GDALProgress {
    let report: (Double) -> Void

    init(_ report: @escaping (Double) -> Void) { self.report = report }

    /// The C callback: forwards the fraction, never asks GDAL to stop.
    static let callback: GDALProgressFunc = { complete, _, context in
        if let context { Unmanaged<GDALProgress>.fromOpaque(context).takeUnretainedValue().report(complete) }
        return 1
    }

    /// Calls `body` with the callback's context pointer, keeping `self` alive meanwhile.
    func withContext<T>(_ body: (UnsafeMutableRawPointer) throws -> T) rethrows -> T {
        try withExtendedLifetime(self) { try body(Unmanaged.passUnretained(self).toOpaque()) }
    }
}

extension GDAL {
    /// GDAL's numeric text for an argument, exact for doubles.
    static func argument(_ value: Double) -> String { String(format: "%.17g", value) }
}
