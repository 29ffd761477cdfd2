import CGDAL
import Foundation
import Primitives

/// An 8-bit image in memory (`channels` interleaved: 1 gray, 2 gray+alpha, 3 RGB), drawn into
/// directly and written as one PNG through GDAL (MEM dataset, PNG driver's CreateCopy).
struct PNGImage {
    let width: Int
    let height: Int
    let channels: Int
    var pixels: [UInt8]

    init(width: Int, height: Int, channels: Int = 3, fill: UInt8 = 255) {
        self.width = width
        self.height = height
        self.channels = channels
        pixels = [UInt8](repeating: fill, count: width * height * channels)
    }

    typealias RGB = (UInt8, UInt8, UInt8)

    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: RGB) {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        for yy in y0..<y1 {
            var i = (yy &* width &+ x0) &* 3
            for _ in x0..<x1 {
                pixels[i] = color.0; pixels[i &+ 1] = color.1; pixels[i &+ 2] = color.2
                i &+= 3
            }
        }
    }

    /// Copies an RGB block of `w`×`h` pixels, each repeated `scale`×`scale` times, with its top-left at (x, y).
    mutating func blit(_ rgb: [UInt8], width w: Int, height h: Int, scale: Int, x: Int, y: Int) {
        for sy in 0..<h {
            for sx in 0..<w {
                let s = (sy &* w &+ sx) &* 3
                for dy in 0..<scale {
                    let yy = y &+ sy &* scale &+ dy
                    guard yy >= 0, yy < height else { continue }
                    for dx in 0..<scale {
                        let xx = x &+ sx &* scale &+ dx
                        guard xx >= 0, xx < width else { continue }
                        let d = (yy &* width &+ xx) &* 3
                        pixels[d] = rgb[s]; pixels[d &+ 1] = rgb[s &+ 1]; pixels[d &+ 2] = rgb[s &+ 2]
                    }
                }
            }
        }
    }

    /// Draws `text` in the 5×7 bitmap font, each font pixel `scale`×`scale`; returns its width.
    @discardableResult
    mutating func text(_ text: String, x: Int, y: Int, scale: Int = 2, color: RGB = (0, 0, 0)) -> Int {
        var cx = x
        for character in text.uppercased() {
            let rows = BitmapFont.glyph(character)
            for (r, bits) in rows.enumerated() {
                for c in 0..<BitmapFont.width where bits & (1 << (BitmapFont.width - 1 - c)) != 0 {
                    fill(x: cx + c * scale, y: y + r * scale, width: scale, height: scale, color: color)
                }
            }
            cx += BitmapFont.advance * scale
        }
        return cx - x
    }

    /// Writes the PNG as a `StagedOutput`.
    func write(to path: String, overwrite: Bool) throws {
        try RasterWriter.checkDestination(path, overwrite: overwrite)
        GDAL.ensureRegistered()
        guard let mem = GDALGetDriverByName("MEM"), let png = GDALGetDriverByName("PNG") else {
            throw DataError(path, "GDAL lacks the MEM or PNG driver")
        }
        let dataset = try GDAL.call(path, "cannot create the image in memory") {
            GDALCreate(mem, "", Int32(width), Int32(height), Int32(channels), GDT_Byte, nil)
        }
        defer { GDALClose(dataset) }
        var copy = pixels
        for b in 0..<channels {
            try copy.withUnsafeMutableBytes { raw in
                try GDAL.check(path, "cannot fill the image") {
                    GDALRasterIO(GDALGetRasterBand(dataset, Int32(b + 1)), GF_Write, 0, 0, Int32(width), Int32(height),
                                 raw.baseAddress! + b, Int32(width), Int32(height), GDT_Byte,
                                 Int32(channels), Int32(width * channels))
                }
            }
        }
        if channels == 2 || channels == 4 {
            GDALSetRasterColorInterpretation(GDALGetRasterBand(dataset, Int32(channels)), GCI_AlphaBand)
        }
        // No .aux.xml side file: the PNG is the whole output.
        CPLSetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO")
        defer { CPLSetThreadLocalConfigOption("GDAL_PAM_ENABLED", nil) }
        let stage = StagedOutput(path, suffix: ".png")
        let written = try GDAL.call(path, "cannot write the PNG") {
            GDALCreateCopy(png, stage.temporary, dataset, 0, nil, nil, nil)
        }
        CPLErrorReset()
        GDALClose(written)
        if CPLGetLastErrorType() == CE_Failure || CPLGetLastErrorType() == CE_Fatal {
            throw DataError(path, "write failed: \(GDAL.lastMessage(or: "flush failed"))")
        }
        try stage.commit()
    }
}
