import CGDAL
import Foundation

/// An input raster of `prepare`: a file and the band to take from it.
public struct RasterSource: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    /// 1-based band; nil takes the file's only band (for orthos: the mean of all its bands).
    public var band: Int?

    public init(path: String, band: Int? = nil) {
        self.path = path
        self.band = band
    }

    /// "FILE" or "FILE:N" (band N, from 1). A path that exists exactly as written is a file even
    /// when it ends in ":<digits>".
    public init(_ text: String) {
        if !FileManager.default.fileExists(atPath: text), let colon = text.lastIndex(of: ":"), colon != text.startIndex,
           let band = Int(text[text.index(after: colon)...]) {
            self.init(path: String(text[..<colon]), band: band)
        } else {
            self.init(path: text)
        }
    }

    public var description: String { band.map { "\(path):\($0)" } ?? path }
}

/// A source opened for warping: the dataset GDALWarp reads (a one-band virtual raster when one
/// band of a multi-band file is chosen), its coordinate system and where it lies.
final class OpenedSource {
    let source: RasterSource
    /// What GDALWarp reads.
    let dataset: GDALDatasetH
    let bandCount: Int
    let crsWKT: String
    let geoTransform: [Double]
    let width: Int
    let height: Int
    /// True when no band declares nodata: NaN is then the only nodata a float file can hold.
    let declaresNoNodata: Bool
    let isFloat: Bool
    private let file: GDALDatasetH
    private let subset: GDALDatasetH?

    /// `allBands` keeps every band of a multi-band file (orthos average them); otherwise a
    /// multi-band file needs an explicit band.
    init(_ source: RasterSource, allBands: Bool) throws {
        GDAL.ensureRegistered()
        let path = source.path
        try GDAL.checkRasterFile(path)
        let file = try GDAL.call(path, "not a readable raster") { GDALOpen(path, GA_ReadOnly) }
        var subset: GDALDatasetH?
        do {
            let count = Int(GDALGetRasterCount(file))
            guard count >= 1 else { throw DataError(path, "has no raster band") }
            if let band = source.band, !(1...count).contains(band) {
                throw DataError(path, "has \(count) band\(count == 1 ? "" : "s"); there is no band \(band)")
            }
            if source.band == nil, count > 1, !allBands {
                throw DataError(path, "has \(count) bands: choose one as \(path):N")
            }
            let used = source.band.map { [$0] } ?? Array(1...count)
            for b in used {
                let type = GDALGetRasterDataType(GDALGetRasterBand(file, Int32(b)))
                if type == GDT_Unknown || GDALDataTypeIsComplex(type) != 0 {
                    let name = GDALGetDataTypeName(type).map { String(cString: $0) } ?? "Unknown"
                    throw DataError(path, "band \(b) has data type \(name), not a real number type")
                }
            }
            var transform = [Double](repeating: 0, count: 6)
            guard GDALGetGeoTransform(file, &transform) == CE_None else {
                throw DataError(path, "is not georeferenced (it has no geotransform)")
            }
            let wkt = GDALGetProjectionRef(file).map { String(cString: $0) } ?? ""
            if wkt.isEmpty { throw DataError(path, "has no coordinate reference system") }
            if let band = source.band, count > 1 {
                let arguments = GDALArguments(["-of", "VRT", "-b", String(band)])
                guard let options = GDALTranslateOptionsNew(arguments.list, nil) else {
                    throw DataError(path, "cannot select band \(band)")
                }
                defer { GDALTranslateOptionsFree(options) }
                subset = try GDAL.call(path, "cannot select band \(band)") { GDALTranslate("", file, options, nil) }
            }
            let dataset = subset ?? file
            bandCount = Int(GDALGetRasterCount(dataset))
            var declared = false
            var float = true
            for b in 1...bandCount {
                let handle = GDALGetRasterBand(dataset, Int32(b))
                var has: Int32 = 0
                _ = GDALGetRasterNoDataValue(handle, &has)
                if has != 0 { declared = true }
                let type = GDALGetRasterDataType(handle)
                if type != GDT_Float32 && type != GDT_Float64 { float = false }
            }
            declaresNoNodata = !declared
            isFloat = float
            crsWKT = wkt
            geoTransform = transform
            width = Int(GDALGetRasterXSize(file))
            height = Int(GDALGetRasterYSize(file))
            self.dataset = dataset
        } catch {
            if let subset { GDALClose(subset) }
            GDALClose(file)
            throw error
        }
        self.source = source
        self.file = file
        self.subset = subset
    }

    deinit {
        if let subset { GDALClose(subset) }
        GDALClose(file)
    }

    /// The bounding box (minX, minY, maxX, maxY) of the raster in the coordinate system `wkt`:
    /// exact when the systems are the same, else of points along its edges transformed by OSR.
    func extent(in wkt: String) throws -> Extent {
        let t = geoTransform
        var xs: [Double] = [], ys: [Double] = []
        let steps = Grid.sameCRS(crsWKT, wkt) ? 1 : 64
        for i in 0...steps {
            let f = Double(i) / Double(steps)
            for (px, py) in [(f, 0.0), (f, 1.0), (0.0, f), (1.0, f)] {
                let col = px * Double(width), row = py * Double(height)
                xs.append(t[0] + col * t[1] + row * t[2])
                ys.append(t[3] + col * t[4] + row * t[5])
            }
        }
        if steps > 1 { try OpenedSource.transform(&xs, &ys, from: crsWKT, to: wkt, path: source.path) }
        var box = Extent(minX: .infinity, minY: .infinity, maxX: -.infinity, maxY: -.infinity)
        for (x, y) in zip(xs, ys) where x.isFinite && y.isFinite {
            box.minX = min(box.minX, x); box.maxX = max(box.maxX, x)
            box.minY = min(box.minY, y); box.maxY = max(box.maxY, y)
        }
        guard box.minX < box.maxX, box.minY < box.maxY else {
            throw DataError(source.path, "cannot be placed in the target coordinate system \(Grid.crsName(wkt))")
        }
        return box
    }

    /// Transforms points in place in GIS axis order (x = easting/longitude); points OSR cannot
    /// transform become NaN.
    static func transform(_ xs: inout [Double], _ ys: inout [Double], from: String, to: String, path: String) throws {
        guard let source = OSRNewSpatialReference(from), let target = OSRNewSpatialReference(to) else {
            throw DataError(path, "its coordinate system cannot be parsed")
        }
        defer { OSRDestroySpatialReference(source); OSRDestroySpatialReference(target) }
        OSRSetAxisMappingStrategy(source, OAMS_TRADITIONAL_GIS_ORDER)
        OSRSetAxisMappingStrategy(target, OAMS_TRADITIONAL_GIS_ORDER)
        let transformation = try GDAL.call(path, "no transformation to \(Grid.crsName(to))") {
            OCTNewCoordinateTransformation(source, target)
        }
        defer { OCTDestroyCoordinateTransformation(transformation) }
        var success = [Int32](repeating: 0, count: xs.count)
        _ = OCTTransformEx(transformation, Int32(xs.count), &xs, &ys, nil, &success)
        for i in xs.indices where success[i] == 0 { xs[i] = .nan; ys[i] = .nan }
    }
}

/// An axis-aligned box in map coordinates.
public struct Extent: Equatable, Sendable {
    public var minX: Double
    public var minY: Double
    public var maxX: Double
    public var maxY: Double

    public init(minX: Double, minY: Double, maxX: Double, maxY: Double) {
        self.minX = minX
        self.minY = minY
        self.maxX = maxX
        self.maxY = maxY
    }

    func intersection(_ other: Extent) -> Extent? {
        let box = Extent(minX: max(minX, other.minX), minY: max(minY, other.minY),
                         maxX: min(maxX, other.maxX), maxY: min(maxY, other.maxY))
        return box.minX < box.maxX && box.minY < box.maxY ? box : nil
    }
}
