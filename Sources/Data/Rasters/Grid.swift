import CGDAL

/// The pixel grid a raster lives on: size, affine geotransform (GDAL order: x0, dx, rx, y0, ry, dy)
/// and coordinate reference system as WKT. Every band of a scene must share one.
public struct Grid: Equatable, Sendable, CustomStringConvertible {
    public var width: Int
    public var height: Int
    public var geoTransform: [Double]
    public var crsWKT: String

    public init(width: Int, height: Int, geoTransform: [Double], crsWKT: String) {
        precondition(geoTransform.count == 6, "a geotransform has six coefficients")
        self.width = width
        self.height = height
        self.geoTransform = geoTransform
        self.crsWKT = crsWKT
    }

    /// A north-up grid with square pixels of `pixelSize` whose top-left corner is (`originX`, `originY`).
    public init(width: Int, height: Int, originX: Double, originY: Double, pixelSize: Double, epsg: Int) throws {
        self.init(width: width, height: height,
                  geoTransform: [originX, pixelSize, 0, originY, 0, -pixelSize],
                  crsWKT: try Grid.wkt(epsg: epsg))
    }

    public var pixelCount: Int { width &* height }

    public var description: String {
        "\(width)×\(height) px, geotransform \(geoTransform.map { String($0) }.joined(separator: ", "))"
    }

    /// WKT of an EPSG code, from GDAL's own database.
    public static func wkt(epsg: Int) throws -> String {
        GDAL.ensureRegistered()
        guard let srs = OSRNewSpatialReference(nil) else { throw DataError("EPSG:\(epsg)", "cannot create a spatial reference") }
        defer { OSRDestroySpatialReference(srs) }
        try GDAL.call("EPSG:\(epsg)", "unknown coordinate system") {
            OSRImportFromEPSG(srs, Int32(epsg)) == OGRERR_NONE ? () : nil
        }
        var text: UnsafeMutablePointer<CChar>?
        guard OSRExportToWkt(srs, &text) == OGRERR_NONE, let text else {
            throw DataError("EPSG:\(epsg)", "cannot express the coordinate system as WKT")
        }
        defer { VSIFree(text) }
        return String(cString: text)
    }

    /// What differs between two grids in one phrase, or nil when they are the same grid. Geotransform
    /// coefficients are compared to a millionth of a pixel, so WKT/float round trips do not count as a
    /// difference but a shift by any visible fraction of a pixel does; CRSs are compared by OSR.
    public func difference(from other: Grid) -> String? {
        if width != other.width || height != other.height {
            return "size \(width)×\(height) px instead of \(other.width)×\(other.height)"
        }
        let pixel = max(abs(other.geoTransform[1]), abs(other.geoTransform[5]), abs(other.geoTransform[2]), abs(other.geoTransform[4]))
        let tolerance = pixel > 0 ? pixel * 1e-6 : 1e-9
        let names = ["origin x", "pixel width", "row rotation", "origin y", "column rotation", "pixel height"]
        for i in 0..<6 where abs(geoTransform[i] - other.geoTransform[i]) > tolerance {
            return "geotransform \(names[i]) \(geoTransform[i]) instead of \(other.geoTransform[i])"
        }
        if !Grid.sameCRS(crsWKT, other.crsWKT) {
            return "coordinate system \(Grid.crsName(crsWKT)) instead of \(Grid.crsName(other.crsWKT))"
        }
        return nil
    }

    static func sameCRS(_ a: String, _ b: String) -> Bool {
        if a.isEmpty || b.isEmpty { return a.isEmpty && b.isEmpty }
        if a == b { return true }
        GDAL.ensureRegistered()
        guard let sa = OSRNewSpatialReference(a), let sb = OSRNewSpatialReference(b) else { return false }
        defer { OSRDestroySpatialReference(sa); OSRDestroySpatialReference(sb) }
        return OSRIsSame(sa, sb) != 0
    }

    /// A short human name for a CRS (its WKT name, with the EPSG code when known).
    public static func crsName(_ wkt: String) -> String {
        if wkt.isEmpty { return "(none)" }
        GDAL.ensureRegistered()
        guard let srs = OSRNewSpatialReference(wkt) else { return "(unparsable)" }
        defer { OSRDestroySpatialReference(srs) }
        let name = OSRGetName(srs).map { String(cString: $0) } ?? "(unnamed)"
        if let authority = OSRGetAuthorityName(srs, nil), let code = OSRGetAuthorityCode(srs, nil) {
            return "\(name) (\(String(cString: authority)):\(String(cString: code)))"
        }
        return name
    }
}
