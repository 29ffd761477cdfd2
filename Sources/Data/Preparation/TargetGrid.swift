import CGDAL
import Foundation

/// The grid `prepare` warps every input onto: the common extent of all inputs, in the reference's
/// coordinate system and pixel size unless asked otherwise.
enum TargetGrid {
    /// In the reference's own system the grid keeps the reference's pixel lattice (its pixels are
    /// copied, not resampled); in another system pixel edges fall on multiples of the pixel size
    /// (gdalwarp's -tap). Either way the grid shrinks inwards to whole pixels inside the common extent.
    static func choose(reference: OpenedSource, inputs: [OpenedSource], crs: String?, resolution: Double?) throws -> Grid {
        let wkt = try crs.map(wktOf) ?? reference.crsWKT
        let t = reference.geoTransform
        let northUp = t[2] == 0 && t[4] == 0
        let onReferenceLattice = northUp && Grid.sameCRS(reference.crsWKT, wkt)
        var dx: Double, dy: Double
        if let resolution {
            guard resolution > 0, resolution.isFinite else { throw DataError("--resolution", "must be a positive number (got \(resolution))") }
            (dx, dy) = (resolution, resolution)
        } else if onReferenceLattice {
            (dx, dy) = (abs(t[1]), abs(t[5]))
        } else {
            // As gdalwarp suggests: the reference's pixel diagonal carried into the new system.
            let box = try reference.extent(in: wkt)
            let size = ((box.maxX - box.minX) * (box.maxX - box.minX) + (box.maxY - box.minY) * (box.maxY - box.minY)).squareRoot()
                / Double(reference.width * reference.width + reference.height * reference.height).squareRoot()
            (dx, dy) = (size, size)
        }

        var common: Extent?
        for input in inputs {
            let box = try input.extent(in: wkt)
            if let soFar = common {
                guard let overlap = soFar.intersection(box) else {
                    throw DataError(input.source.path, "does not overlap the inputs before it (in \(Grid.crsName(wkt)))")
                }
                common = overlap
            } else {
                common = box
            }
        }
        guard let box = common else { throw DataError("", "no input raster") }

        let (ox, oy) = onReferenceLattice ? (t[0], t[3]) : (0.0, 0.0)
        let slack = 1e-6
        let x0 = ox + ((box.minX - ox) / dx - slack).rounded(.up) * dx
        let x1 = ox + ((box.maxX - ox) / dx + slack).rounded(.down) * dx
        let top = oy - ((oy - box.maxY) / dy - slack).rounded(.up) * dy
        let bottom = oy - ((oy - box.minY) / dy + slack).rounded(.down) * dy
        let width = Int(((x1 - x0) / dx).rounded()), height = Int(((top - bottom) / dy).rounded())
        guard width >= 1, height >= 1 else {
            throw DataError(reference.source.path, "the inputs' common extent is smaller than one \(dx)×\(dy) pixel")
        }
        guard width <= 1_000_000, height <= 1_000_000 else {
            throw DataError(reference.source.path, "the target grid would be \(width)×\(height) px; check --resolution and --crs")
        }
        return Grid(width: width, height: height, geoTransform: [x0, dx, 0, top, 0, -dy], crsWKT: wkt)
    }

    /// WKT of anything GDAL's OSRSetFromUserInput takes: EPSG:32610, a WKT or PROJ string, a file.
    static func wktOf(_ text: String) throws -> String {
        GDAL.ensureRegistered()
        guard let srs = OSRNewSpatialReference(nil) else { throw DataError(text, "cannot create a spatial reference") }
        defer { OSRDestroySpatialReference(srs) }
        try GDAL.call(text, "not a coordinate system GDAL knows") { OSRSetFromUserInput(srs, text) == OGRERR_NONE ? () : nil }
        var wkt: UnsafeMutablePointer<CChar>?
        guard OSRExportToWkt(srs, &wkt) == OGRERR_NONE, let wkt else {
            throw DataError(text, "cannot express the coordinate system as WKT")
        }
        defer { VSIFree(wkt) }
        return String(cString: wkt)
    }
}
