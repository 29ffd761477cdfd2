import CGDAL
import Foundation
import Primitives

/// Writes one single-band Float32 GeoTIFF window by window. The file is built as a `StagedOutput`
/// and renamed onto the destination by `commit()`; a writer dropped without commit removes its
/// temporary file, so a failed run never leaves a half-written output. Every file carries
/// `Provenance.process` and the writer's own `metadata` items.
public final class RasterWriter {
    public enum Format: Sendable {
        /// Tiled GeoTIFF, DEFLATE with the floating-point predictor, BigTIFF when it might be needed.
        case geoTIFF
        /// Cloud-optimized GeoTIFF (GDAL's COG driver, same compression, with overviews).
        case cog
    }

    public let path: String
    public let grid: Grid
    public let nodata: Double?
    private let format: Format
    private let threads: Int
    private let stage: StagedOutput
    private var dataset: GDALDatasetH?
    private let band: GDALRasterBandH
    private let nodataValue: Float?

    /// Checks the destination first (its folder exists, it is not there unless `overwrite`), so a
    /// command fails before doing any work. With `threads` > 1 GDAL compresses blocks on that many
    /// threads of its own while the caller goes on (its file writes stay on the caller's thread).
    public init(path: String, grid: Grid, nodata: Double?, format: Format = .geoTIFF, overwrite: Bool = false,
                threads: Int = 1, metadata: [String: String] = [:]) throws {
        GDAL.ensureRegistered()
        try RasterWriter.checkDestination(path, overwrite: overwrite)
        guard let driver = GDALGetDriverByName("GTiff") else { throw DataError(path, "GDAL has no GTiff driver") }
        let stage = StagedOutput(path, suffix: ".tif")
        var options: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
        for (key, value) in [("TILED", "YES"), ("BLOCKXSIZE", "256"), ("BLOCKYSIZE", "256"), ("COMPRESS", "DEFLATE"),
                             ("PREDICTOR", "3"), ("BIGTIFF", "IF_SAFER"), ("NUM_THREADS", "\(threads)")] {
            options = CSLSetNameValue(options, key, value)
        }
        defer { CSLDestroy(options) }
        let created = try GDAL.call(path, "cannot create") {
            GDALCreate(driver, stage.temporary, Int32(grid.width), Int32(grid.height), 1, GDT_Float32, options)
        }
        self.stage = stage
        var transform = grid.geoTransform
        GDALSetGeoTransform(created, &transform)
        if !grid.crsWKT.isEmpty { GDALSetProjection(created, grid.crsWKT) }
        for (key, value) in Provenance.process.merging(metadata, uniquingKeysWith: { $1 }) {
            GDALSetMetadataItem(created, key, value, nil)
        }
        band = GDALGetRasterBand(created, 1)
        if let nodata { GDALSetRasterNoDataValue(band, nodata) }
        dataset = created
        self.path = path
        self.grid = grid
        self.nodata = nodata
        self.format = format
        self.threads = threads
        nodataValue = nodata.flatMap { $0.isNaN ? nil : Float($0) }
    }

    /// Closes an uncommitted file before `stage` removes it.
    deinit {
        if let dataset { GDALClose(dataset) }
    }

    /// Fails early with the message a command prints when the output cannot go where asked.
    public static func checkDestination(_ path: String, overwrite: Bool) throws {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isFolder: ObjCBool = false
        if !FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) || !isFolder.boolValue {
            throw DataError(path, "cannot write: folder \(folder) does not exist")
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            if isFolder.boolValue { throw DataError(path, "cannot write: is a folder") }
            if !overwrite { throw DataError(path, "already exists (pass --overwrite to replace it)") }
        }
    }

    /// Writes a window; NaN becomes the declared nodata value so the file has one nodata encoding.
    public func write(x: Int, y: Int, width: Int, height: Int, from values: UnsafePointer<Float>) throws {
        guard dataset != nil, x >= 0, y >= 0, x + width <= grid.width, y + height <= grid.height else {
            throw DataError(path, "window \(width)×\(height) at (\(x), \(y)) is outside the raster or written after commit")
        }
        let count = width * height
        var staged: [Float]?
        if let nodataValue {
            var i = 0
            while i < count, !values[i].isNaN { i &+= 1 }
            if i < count {
                var copy = Array(UnsafeBufferPointer(start: values, count: count))
                for j in i..<count where copy[j].isNaN { copy[j] = nodataValue }
                staged = copy
            }
        }
        let band = self.band
        try GDAL.check(path, "write failed") {
            if let staged {
                return staged.withUnsafeBufferPointer {
                    GDALRasterIO(band, GF_Write, Int32(x), Int32(y), Int32(width), Int32(height),
                                 UnsafeMutableRawPointer(mutating: $0.baseAddress!), Int32(width), Int32(height), GDT_Float32, 0, 0)
                }
            }
            return GDALRasterIO(band, GF_Write, Int32(x), Int32(y), Int32(width), Int32(height),
                                UnsafeMutableRawPointer(mutating: values), Int32(width), Int32(height), GDT_Float32, 0, 0)
        }
    }

    public func write(x: Int, y: Int, width: Int, height: Int, from values: [Float]) throws {
        precondition(values.count == width * height, "window size and value count differ")
        try values.withUnsafeBufferPointer { try write(x: x, y: y, width: width, height: height, from: $0.baseAddress!) }
    }

    /// Flushes, converts to COG if asked, and renames the finished file onto the destination.
    public func commit() throws {
        guard let dataset else { throw DataError(path, "already committed") }
        self.dataset = nil
        // GDAL 3.6's flush and close return nothing; a failed block write (disk full) is only
        // visible as this thread's last error.
        CPLErrorReset()
        CPLPushErrorHandler(CPLQuietErrorHandler)
        GDALClose(dataset)
        CPLPopErrorHandler()
        if CPLGetLastErrorType() == CE_Failure || CPLGetLastErrorType() == CE_Fatal {
            let message = GDAL.lastMessage(or: "flush failed")
            stage.discard()
            throw DataError(path, "write failed: \(message)")
        }
        var finished = stage
        if format == .cog {
            defer { stage.discard() }
            finished = StagedOutput(path, suffix: ".tif.cog.tif")
            try RasterWriter.convertToCOG(from: stage.temporary, to: finished.temporary, reportAs: path, threads: threads)
        }
        try finished.commit()
    }

    private static func convertToCOG(from source: String, to destination: String, reportAs path: String, threads: Int) throws {
        guard let driver = GDALGetDriverByName("COG") else { throw DataError(path, "GDAL has no COG driver") }
        let input = try GDAL.call(path, "cannot reopen the temporary file") { GDALOpen(source, GA_ReadOnly) }
        defer { GDALClose(input) }
        var options: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
        for (key, value) in [("COMPRESS", "DEFLATE"), ("PREDICTOR", "FLOATING_POINT"), ("BIGTIFF", "IF_SAFER"),
                             ("BLOCKSIZE", "512"), ("RESAMPLING", "AVERAGE"), ("NUM_THREADS", "\(threads)")] {
            options = CSLSetNameValue(options, key, value)
        }
        defer { CSLDestroy(options) }
        let output = try GDAL.call(path, "COG conversion failed") {
            GDALCreateCopy(driver, destination, input, 0, options, nil, nil)
        }
        GDALClose(output)
    }

    /// Writes a whole in-memory raster in one go (small rasters: tests, synthetic scenes' strips go
    /// through `write(x:y:…)` instead).
    public static func write(_ values: [Float], grid: Grid, nodata: Double?, to path: String,
                             format: Format = .geoTIFF, overwrite: Bool = false) throws {
        precondition(values.count == grid.pixelCount, "value count and grid size differ")
        let writer = try RasterWriter(path: path, grid: grid, nodata: nodata, format: format, overwrite: overwrite)
        try writer.write(x: 0, y: 0, width: grid.width, height: grid.height, from: values)
        try writer.commit()
    }
}
