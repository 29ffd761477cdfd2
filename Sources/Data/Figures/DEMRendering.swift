import CGDAL
import Foundation

/// Hillshades and colour reliefs of small in-memory planes (figure panels), made by
/// GDALDEMProcessing — the code behind gdaldem — on MEM datasets.
enum DEMRendering {
    typealias Stop = (value: Double, color: PNGImage.RGB)

    static let nodata = -9999.0

    /// Grey levels 1–255 of a hillshade (sun azimuth 315°, altitude 45°); 0 where `plane` is NaN.
    /// `pixelSize` is in the same unit as the heights.
    static func hillshade(_ plane: [Float], width: Int, height: Int, pixelSize: Double, zFactor: Double = 1) throws -> [UInt8] {
        let source = try memDataset(plane, width: width, height: height, pixelSize: pixelSize)
        defer { GDALClose(source) }
        let shaded = try process(source, "hillshade", colors: nil,
                                 ["-of", "MEM", "-compute_edges", "-z", GDAL.argument(zFactor), "-az", "315", "-alt", "45"])
        defer { GDALClose(shaded) }
        var grey = try readBytes(shaded, band: 1, width: width, height: height)
        // gdaldem's nodata is 0, a valid pixel darker than 1 would read as nodata.
        for i in 0..<plane.count { grey[i] = plane[i].isNaN ? 0 : max(1, grey[i]) }
        return grey
    }

    /// RGB of `plane` coloured by linear interpolation between `stops` (GDAL's color-relief,
    /// values beyond the ends take the end colours); `missing` where `plane` is NaN.
    static func colorRelief(_ plane: [Float], width: Int, height: Int, stops: [Stop], missing: PNGImage.RGB) throws -> [UInt8] {
        let source = try memDataset(plane, width: width, height: height, pixelSize: 1)
        defer { GDALClose(source) }
        var text = stops.map { "\(GDAL.argument($0.value)) \($0.color.0) \($0.color.1) \($0.color.2)" }.joined(separator: "\n")
        text += "\nnv \(missing.0) \(missing.1) \(missing.2)\n"
        let colorFile = "/vsimem/deepdem-colors-\(UInt64.random(in: 0...UInt64.max)).txt"
        let bytes = Array(text.utf8)
        guard let handle = VSIFOpenL(colorFile, "wb") else { throw DataError(colorFile, "cannot create the colour table") }
        _ = bytes.withUnsafeBytes { VSIFWriteL($0.baseAddress, 1, bytes.count, handle) }
        VSIFCloseL(handle)
        defer { VSIUnlink(colorFile) }
        let colored = try process(source, "color-relief", colors: colorFile, ["-of", "MEM"])
        defer { GDALClose(colored) }
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for b in 0..<3 {
            let band = try readBytes(colored, band: b + 1, width: width, height: height)
            for i in 0..<(width * height) { rgb[i &* 3 &+ b] = band[i] }
        }
        return rgb
    }

    /// A one-row ramp across `stops`' range, coloured the same way (a colour bar).
    static func colorBar(width: Int, stops: [Stop]) throws -> [UInt8] {
        let low = stops.first!.value, high = stops.last!.value
        let ramp = (0..<width).map { Float(low + (high - low) * (Double($0) + 0.5) / Double(width)) }
        return try colorRelief(ramp, width: width, height: 1, stops: stops, missing: (0, 0, 0))
    }

    private static func memDataset(_ plane: [Float], width: Int, height: Int, pixelSize: Double) throws -> GDALDatasetH {
        GDAL.ensureRegistered()
        guard let driver = GDALGetDriverByName("MEM") else { throw DataError("MEM", "GDAL lacks the MEM driver") }
        let dataset = try GDAL.call("MEM", "cannot create a raster in memory") {
            GDALCreate(driver, "", Int32(width), Int32(height), 1, GDT_Float32, nil)
        }
        var transform = [0, pixelSize, 0, 0, 0, -pixelSize]
        GDALSetGeoTransform(dataset, &transform)
        let band = GDALGetRasterBand(dataset, 1)
        GDALSetRasterNoDataValue(band, nodata)
        var values = plane.map { $0.isNaN ? Float(nodata) : $0 }
        do {
            try GDAL.check("MEM", "cannot fill a raster in memory") {
                GDALRasterIO(band, GF_Write, 0, 0, Int32(width), Int32(height), &values, Int32(width), Int32(height), GDT_Float32, 0, 0)
            }
        } catch {
            GDALClose(dataset)
            throw error
        }
        return dataset
    }

    private static func process(_ source: GDALDatasetH, _ mode: String, colors: String?, _ arguments: [String]) throws -> GDALDatasetH {
        let list = GDALArguments(arguments)
        guard let options = GDALDEMProcessingOptionsNew(list.list, nil) else { throw DataError("gdaldem \(mode)", "bad options") }
        defer { GDALDEMProcessingOptionsFree(options) }
        return try GDAL.call("gdaldem \(mode)", "failed") { GDALDEMProcessing("", source, mode, colors, options, nil) }
    }

    private static func readBytes(_ dataset: GDALDatasetH, band: Int, width: Int, height: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: width * height)
        try GDAL.check("MEM", "cannot read a rendered raster") {
            GDALRasterIO(GDALGetRasterBand(dataset, Int32(band)), GF_Read, 0, 0, Int32(width), Int32(height),
                         &bytes, Int32(width), Int32(height), GDT_Byte, 0, 0)
        }
        return bytes
    }

    /// Metres per unit of a CRS's horizontal axes (degrees: at the equator, as gdaldem's -s 111120).
    static func metresPerUnit(_ wkt: String) -> Double {
        guard !wkt.isEmpty, let srs = OSRNewSpatialReference(wkt) else { return 1 }
        defer { OSRDestroySpatialReference(srs) }
        if OSRIsGeographic(srs) != 0 { return 111_120 }
        return OSRGetLinearUnits(srs, nil)
    }
}
