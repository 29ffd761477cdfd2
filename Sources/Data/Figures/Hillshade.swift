import Foundation

/// A PNG hillshade of a DEM, e.g. of a refined DSM (`deepdem refine --hillshade`).
public enum Hillshade {
    /// Writes `png`: grey + alpha, the hillshade of `dem` by GDALDEMProcessing (sun azimuth 315°,
    /// altitude 45°, heights × `zFactor`), transparent where `dem` is nodata. A DEM longer than
    /// `maxSize` pixels on a side is first reduced by block averages, so the PNG stays viewable
    /// and memory stays bounded. The PNG goes through a temporary name; an existing `png` is an
    /// error unless `overwrite`. Returns the PNG's size in pixels.
    @discardableResult
    public static func write(dem: String, png: String, overwrite: Bool = false, zFactor: Double = 1,
                             maxSize: Int = 4096) throws -> (width: Int, height: Int) {
        try RasterWriter.checkDestination(png, overwrite: overwrite)
        let raster = try Raster(path: dem)
        let grid = raster.grid
        let factor = max(1, (max(grid.width, grid.height) + maxSize - 1) / max(1, maxSize))
        let window = PixelWindow(x: 0, y: 0, width: grid.width, height: grid.height)
        let reduced = try BlockAverage.reduce([raster], window: window, factor: factor) { strips, _ in strips }
        let plane = reduced.layers[0]
        guard plane.contains(where: { !$0.isNaN }) else { throw DataError(dem, "has no valid pixel to shade") }
        let pixel = abs(grid.geoTransform[1]) * Double(factor) * DEMRendering.metresPerUnit(grid.crsWKT)
        let grey = try DEMRendering.hillshade(plane, width: reduced.width, height: reduced.height, pixelSize: pixel, zFactor: zFactor)
        var image = PNGImage(width: reduced.width, height: reduced.height, channels: 2, fill: 0)
        for i in 0..<grey.count {
            image.pixels[2 &* i] = grey[i]
            image.pixels[2 &* i &+ 1] = plane[i].isNaN ? 0 : 255
        }
        try image.write(to: png, overwrite: overwrite)
        return (reduced.width, reduced.height)
    }
}
