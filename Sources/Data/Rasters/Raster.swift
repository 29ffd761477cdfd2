import CGDAL
import Foundation

/// A single-band raster opened read-only through GDAL. Reads are windows converted to Float32 with
/// every nodata encoding (declared value, NaN, ±infinity) turned into NaN, so callers test validity
/// with `isNaN` alone. A GDAL dataset handle is not thread-safe; reads are serialized by a lock.
public final class Raster: @unchecked Sendable {
    public let path: String
    public let grid: Grid
    /// The declared nodata value, if any (NaN when the file declares NaN).
    public let nodata: Double?
    /// GDAL's name of the stored data type, e.g. "Float32", "Byte".
    public let dataTypeName: String
    private let dataset: GDALDatasetH
    private let band: GDALRasterBandH
    private let lock = NSLock()
    private let rule: NodataRule

    public init(path: String) throws {
        GDAL.ensureRegistered()
        try GDAL.checkRasterFile(path)
        let dataset = try GDAL.call(path, "not a readable raster") { GDALOpen(path, GA_ReadOnly) }
        let bands = GDALGetRasterCount(dataset)
        guard bands >= 1, let band = GDALGetRasterBand(dataset, 1) else {
            GDALClose(dataset)
            throw DataError(path, "has no raster band")
        }
        let type = GDALGetRasterDataType(band)
        dataTypeName = GDALGetDataTypeName(type).map { String(cString: $0) } ?? "Unknown"
        if type == GDT_Unknown || GDALDataTypeIsComplex(type) != 0 {
            GDALClose(dataset)
            throw DataError(path, "data type \(dataTypeName) is not a real number type")
        }
        var transform = [Double](repeating: 0, count: 6)
        if GDALGetGeoTransform(dataset, &transform) != CE_None {
            transform = [0, 1, 0, 0, 0, 1]   // GDAL's own default for ungeoreferenced files
        }
        let wkt = GDALGetProjectionRef(dataset).map { String(cString: $0) } ?? ""
        grid = Grid(width: Int(GDALGetRasterXSize(dataset)), height: Int(GDALGetRasterYSize(dataset)),
                    geoTransform: transform, crsWKT: wkt)
        var hasNodata: Int32 = 0
        let value = GDALGetRasterNoDataValue(band, &hasNodata)
        nodata = hasNodata != 0 ? value : nil
        rule = NodataRule(nodata: nodata)
        self.path = path
        self.dataset = dataset
        self.band = band
    }

    deinit { GDALClose(dataset) }

    /// Bytes of one row of GDAL blocks decoded in its cache (block height × raster width).
    var blockRowBytes: Int {
        var bx: Int32 = 0, by: Int32 = 0
        GDALGetBlockSize(band, &bx, &by)
        return Int(max(by, 1)) * grid.width * Int(GDALGetDataTypeSizeBytes(GDALGetRasterDataType(band)))
    }

    var blockHeight: Int {
        var bx: Int32 = 0, by: Int32 = 0
        GDALGetBlockSize(band, &bx, &by)
        return Int(max(by, 1))
    }

    /// Reads the window at (`x`, `y`) of `width`×`height` pixels into `buffer` (row-major, row
    /// stride `width`), nodata as NaN.
    public func read(x: Int, y: Int, width: Int, height: Int, into buffer: UnsafeMutablePointer<Float>) throws {
        guard x >= 0, y >= 0, width > 0, height > 0, x + width <= grid.width, y + height <= grid.height else {
            throw DataError(path, "window \(width)×\(height) at (\(x), \(y)) is outside the \(grid.width)×\(grid.height) raster")
        }
        lock.lock()
        defer { lock.unlock() }
        try GDAL.check(path, "read failed") {
            GDALRasterIO(band, GF_Read, Int32(x), Int32(y), Int32(width), Int32(height),
                         buffer, Int32(width), Int32(height), GDT_Float32, 0, 0)
        }
        rule.replaceWithNaN(buffer, count: width &* height)
    }

    public func read(x: Int, y: Int, width: Int, height: Int) throws -> [Float] {
        var values = [Float](repeating: 0, count: width * height)
        try values.withUnsafeMutableBufferPointer {
            try read(x: x, y: y, width: width, height: height, into: $0.baseAddress!)
        }
        return values
    }

    /// True when some pixel holds data. Reads rows of blocks until it finds one, so a usual
    /// raster costs a block row and an empty one a pass over the file.
    public func hasValidPixel() throws -> Bool {
        let rows = blockHeight
        var buffer = [Float](repeating: 0, count: rows * grid.width)
        for y in stride(from: 0, to: grid.height, by: rows) {
            let height = min(rows, grid.height - y)
            try buffer.withUnsafeMutableBufferPointer { try read(x: 0, y: y, width: grid.width, height: height, into: $0.baseAddress!) }
            if buffer.prefix(height * grid.width).contains(where: { !$0.isNaN }) { return true }
        }
        return false
    }

    /// The whole raster; for small files (tests, synthetic scenes), never for scenes.
    public func readAll() throws -> [Float] {
        try read(x: 0, y: 0, width: grid.width, height: grid.height)
    }
}

/// How one file encodes "no data", reduced to a test applied once per read. ASP declares nodata as
/// −3.40282e+38 in text, which is not exactly −FLT_MAX, while its pixels are −FLT_MAX; a declared
/// value within 1e-5 of ±FLT_MAX therefore also matches anything at least that large in magnitude.
struct NodataRule: Sendable {
    let value: Float?
    let farBelow: Float
    let farAbove: Float

    init(nodata: Double?) {
        var value: Float?
        var below = -Float.infinity
        var above = Float.infinity
        if let nodata, !nodata.isNaN {
            value = Float(nodata)
            let limit = Double(Float.greatestFiniteMagnitude)
            if nodata <= -limit * (1 - 1e-5) { below = Float(max(nodata, -limit)) }
            if nodata >= limit * (1 - 1e-5) { above = Float(min(nodata, limit)) }
        }
        self.value = value
        farBelow = below
        farAbove = above
    }

    func replaceWithNaN(_ p: UnsafeMutablePointer<Float>, count: Int) {
        let value = self.value ?? .nan
        let below = farBelow, above = farAbove
        var i = 0
        while i < count {
            let v = p[i]
            if v == value || !v.isFinite || v <= below || v >= above { p[i] = .nan }
            i &+= 1
        }
    }
}
