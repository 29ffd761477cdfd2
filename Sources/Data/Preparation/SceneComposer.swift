import CGDAL
import Foundation

/// The last pass of `prepare`: reads the warped inputs strip by strip, derives NDVI and
/// `nodata_mask`, normalizes the orthos and hands every band's strip to its writer.
final class SceneComposer {
    let grid: Grid
    let stripRows: Int
    private let files: [String: WarpedFile]
    private var normalizers: [String: ContrastNormalizer] = [:]

    init(grid: Grid, warped: [String: String], contrast: Contrast, stripRows: Int) throws {
        self.grid = grid
        // About a dozen planes of a strip are alive at once; 4 Mpx per plane bounds them at
        // ~200 MB even for scenes tens of thousands of pixels wide.
        self.stripRows = max(1, min(stripRows, (1 << 22) / max(1, grid.width)))
        files = try warped.mapValues { try WarpedFile(path: $0) }
        for band in [Band.ortho1, Band.ortho2] where files[band] != nil {
            normalizers[band] = ContrastNormalizer(method: contrast, width: grid.width, height: grid.height)
        }
    }

    /// Writes every band and returns the count of valid pixels per band.
    func compose(into writers: [String: RasterWriter], progress: (Double) -> Void) throws -> [String: Int] {
        let width = grid.width, height = grid.height
        let strips = (height + stripRows - 1) / stripRows
        let contrastPasses = normalizers.values.contains { !$0.isIdentity } ? 2 : 0
        let totalSteps = Double(strips * (contrastPasses + 1))
        var step = 0
        var plane = [Float](repeating: 0, count: width * min(stripRows, height))
        var scratch = plane

        for pass in 0..<contrastPasses {
            for s in 0..<strips {
                let y0 = s * stripRows, rows = min(stripRows, height - y0)
                for band in normalizers.keys.sorted() {
                    try files[band]!.readMean(y0: y0, rows: rows, into: &plane, scratch: &scratch)
                    plane.withUnsafeBufferPointer { p in
                        let strip = UnsafeBufferPointer(rebasing: p[0..<(rows * width)])
                        if pass == 0 { normalizers[band]!.observeRange(strip) }
                        else { normalizers[band]!.observeHistogram(strip, y0: y0, rows: rows) }
                    }
                }
                step += 1
                progress(Double(step) / totalSteps)
            }
        }
        for band in normalizers.keys { normalizers[band]!.finish() }

        var planes: [String: [Float]] = [:]
        for band in writers.keys where band != Band.nodataMask { planes[band] = plane }
        var mask = plane
        var valid = writers.mapValues { _ in 0 }
        var red = plane, nir = plane, validity = plane
        let direct = [Band.aspDSM, Band.ortho1, Band.ortho2, Band.triangulationError, Band.ndvi, Band.lidarDSM, Band.lidarDTM]
            .filter { files[$0] != nil }
        let checked = writers.keys.filter { $0 != Band.nodataMask }.sorted()
        for s in 0..<strips {
            let y0 = s * stripRows, rows = min(stripRows, height - y0)
            let n = rows * width
            for band in direct {
                try files[band]!.readMean(y0: y0, rows: rows, into: &planes[band]!, scratch: &scratch)
            }
            for (band, normalizer) in normalizers {
                planes[band]!.withUnsafeMutableBufferPointer { normalizer.apply($0, y0: y0, rows: rows) }
            }
            if files[ScenePreparation.red] != nil {
                try files[ScenePreparation.red]!.readMean(y0: y0, rows: rows, into: &red, scratch: &scratch)
                try files[ScenePreparation.nir]!.readMean(y0: y0, rows: rows, into: &nir, scratch: &scratch)
                SceneComposer.vegetationIndex(red: red, nir: nir, into: &planes[Band.ndvi]!, count: n)
            } else if files[Band.ndvi] != nil {
                planes[Band.ndvi]!.withUnsafeMutableBufferPointer { p in
                    for i in 0..<n where !(p[i] >= -1 && p[i] <= 1) { p[i] = .nan }
                }
            }
            let hasValidity = files[ScenePreparation.validity] != nil
            if hasValidity {
                try files[ScenePreparation.validity]!.readMean(y0: y0, rows: rows, into: &validity, scratch: &scratch)
            }
            for i in 0..<n { mask[i] = 1 }
            if hasValidity {
                for i in 0..<n where !(validity[i] != 0 && !validity[i].isNaN) { mask[i] = 0 }
            }
            for band in checked {
                planes[band]!.withUnsafeBufferPointer { p in
                    for i in 0..<n where p[i].isNaN { mask[i] = 0 }
                }
            }
            planes[Band.nodataMask] = mask
            for (band, writer) in writers {
                try planes[band]!.withUnsafeBufferPointer { p in
                    var count = 0
                    if band == Band.nodataMask {
                        for i in 0..<n where p[i] == 1 { count &+= 1 }
                    } else {
                        for i in 0..<n where !p[i].isNaN { count &+= 1 }
                    }
                    valid[band]! += count
                    try writer.write(x: 0, y: y0, width: width, height: rows, from: p.baseAddress!)
                }
            }
            mask = planes.removeValue(forKey: Band.nodataMask)!
            step += 1
            progress(Double(step) / totalSteps)
        }
        return valid
    }

    /// NDVI = (NIR − red)/(NIR + red); nodata where either is missing, where the sum is 0, and
    /// outside [−1, 1] (negative reflectances), which DeepDEM also masks.
    static func vegetationIndex(red: [Float], nir: [Float], into ndvi: inout [Float], count: Int) {
        red.withUnsafeBufferPointer { r in
            nir.withUnsafeBufferPointer { v in
                ndvi.withUnsafeMutableBufferPointer { out in
                    for i in 0..<count {
                        let sum = v[i] + r[i]
                        let index = (v[i] - r[i]) / sum
                        out[i] = sum != 0 && index >= -1 && index <= 1 ? index : .nan
                    }
                }
            }
        }
    }
}

/// A warped intermediate (Float32, NaN nodata, one or more bands), read by strips of full rows.
final class WarpedFile {
    let path: String
    private let dataset: GDALDatasetH
    private let bands: Int
    private let width: Int

    init(path: String) throws {
        self.path = path
        dataset = try GDAL.call(path, "cannot open the warped input") { GDALOpen(path, GA_ReadOnly) }
        bands = Int(GDALGetRasterCount(dataset))
        width = Int(GDALGetRasterXSize(dataset))
    }

    deinit { GDALClose(dataset) }

    /// Rows [y0, y0 + rows) of the mean of the bands (NaN where any band is nodata) into `values`.
    func readMean(y0: Int, rows: Int, into values: inout [Float], scratch: inout [Float]) throws {
        let n = rows * width
        try read(band: 1, y0: y0, rows: rows, into: &values)
        guard bands > 1 else { return }
        for b in 2...bands {
            try read(band: b, y0: y0, rows: rows, into: &scratch)
            for i in 0..<n { values[i] += scratch[i] }
        }
        let scale = 1 / Float(bands)
        for i in 0..<n { values[i] *= scale }
    }

    private func read(band: Int, y0: Int, rows: Int, into values: inout [Float]) throws {
        let handle = GDALGetRasterBand(dataset, Int32(band))
        let width = self.width
        try values.withUnsafeMutableBufferPointer { p in
            try GDAL.check(path, "read failed") {
                GDALRasterIO(handle, GF_Read, 0, Int32(y0), Int32(width), Int32(rows), p.baseAddress!,
                             Int32(width), Int32(rows), GDT_Float32, 0, 0)
            }
        }
    }
}
