import CGDAL
import Foundation

/// Resampling of continuous data when warping (masks are always warped with `nearest`).
public enum Resampling: String, CaseIterable, Sendable {
    case nearest, bilinear, cubic, cubicspline, lanczos, average

    /// gdalwarp's name for it (-r).
    public var gdalName: String { self == .nearest ? "near" : rawValue }
}

enum Warp {
    /// Warps `source` onto `grid` into a tiled Float32 GeoTIFF at `path` whose nodata is NaN.
    /// It is GDALWarp from gdal_utils.h, the code behind gdalwarp, given the arguments a user would
    /// give gdalwarp, so `gdalwarp -t_srs … -te … -ts … -r … -ot Float32` reproduces it.
    static func run(_ source: OpenedSource, onto grid: Grid, resampling: Resampling, to path: String,
                    progress: ((Double) -> Void)?) throws {
        let t = grid.geoTransform
        var arguments = ["-of", "GTiff", "-co", "TILED=YES", "-co", "BIGTIFF=IF_SAFER",
                         "-t_srs", grid.crsWKT,
                         "-te", GDAL.argument(t[0]), GDAL.argument(t[3] + Double(grid.height) * t[5]),
                         GDAL.argument(t[0] + Double(grid.width) * t[1]), GDAL.argument(t[3]),
                         "-ts", String(grid.width), String(grid.height),
                         "-r", resampling.gdalName, "-ot", "Float32", "-dstnodata", "nan", "-wm", "256"]
        // A float file that declares no nodata can still hold NaN holes; the warper must not
        // interpolate across them.
        if source.declaresNoNodata && source.isFloat { arguments += ["-srcnodata", "nan"] }
        let list = GDALArguments(arguments)
        guard let options = GDALWarpAppOptionsNew(list.list, nil) else {
            throw DataError(source.source.path, "cannot set up the warp")
        }
        defer { GDALWarpAppOptionsFree(options) }
        let box = GDALProgress { progress?($0) }
        try box.withContext { context in
            GDALWarpAppOptionsSetProgress(options, GDALProgress.callback, context)
            var input: GDALDatasetH? = source.dataset
            let output = try GDAL.call(source.source.path, "cannot warp onto the target grid") {
                GDALWarp(path, nil, 1, &input, options, nil)
            }
            CPLErrorReset()
            GDALClose(output)
            if CPLGetLastErrorType() == CE_Failure || CPLGetLastErrorType() == CE_Fatal {
                throw DataError(source.source.path, "warp failed: \(GDAL.lastMessage(or: "writing \(path) failed"))")
            }
        }
    }

    /// Fills nodata holes of the first band of the GeoTIFF at `path` in place from valid pixels at
    /// most `distance` pixels away (GDALFillNodata, inverse-distance weighting, no smoothing).
    static func fillHoles(path: String, distance: Int, reportAs name: String, progress: ((Double) -> Void)?) throws {
        let dataset = try GDAL.call(path, "cannot reopen to fill holes") { GDALOpen(path, GA_Update) }
        let box = GDALProgress { progress?($0) }
        var failure: Error?
        box.withContext { context in
            do {
                try GDAL.check(name, "filling holes failed") {
                    GDALFillNodata(GDALGetRasterBand(dataset, 1), nil, Double(distance), 0, 0, nil, GDALProgress.callback, context)
                }
            } catch { failure = error }
        }
        GDALClose(dataset)
        if let failure { throw failure }
    }
}
