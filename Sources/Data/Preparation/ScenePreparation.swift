import CGDAL
import Foundation

/// Turns raw inputs into a scene folder, as DeepDEM's preprocessing does: every input is warped
/// (GDALWarp) onto one grid covering the inputs' common extent, NDVI is computed from red and
/// NIR, orthos are contrast-normalized to [0, 1], small DSM holes can be filled, and
/// `nodata_mask` is 1 exactly where every input and target is valid.
///
/// Outputs are `final_<band>.tif`, Float32 tiled DEFLATE GeoTIFFs with nodata −9999
/// (`nodata_mask`: 0/1, no nodata). A new folder is built under a temporary name and renamed when
/// complete; in an existing folder (`overwrite`) every band is finished before any is renamed into
/// place, and bands of an earlier scene that this one lacks are removed.
public struct ScenePreparation: Sendable {
    /// The initial DSM (e.g. from the Ames Stereo Pipeline).
    public var dsm: RasterSource
    /// Zero, one or two orthoimages; a multi-band one without a chosen band gives the mean of its
    /// bands. The first is the reference grid unless `crs`/`resolution` say otherwise (the DSM
    /// when there is no ortho).
    public var orthos: [RasterSource] = []
    public var triangulationError: RasterSource?
    /// Red and NIR for NDVI = (NIR − red)/(NIR + red), or a ready `ndvi`.
    public var red: RasterSource?
    public var nir: RasterSource?
    public var ndvi: RasterSource?
    public var lidar: RasterSource?
    public var lidarDTM: RasterSource?
    /// An extra validity raster (non-zero = valid, e.g. ASP's good-pixel map), warped with
    /// nearest and folded into `nodata_mask`; not written as a band.
    public var validMask: RasterSource?
    public var out: String
    /// Target coordinate system (anything OSRSetFromUserInput takes, e.g. "EPSG:32610").
    public var crs: String?
    /// Target pixel size in the target system's units.
    public var resolution: Double?
    public var resampling: Resampling = .bilinear
    public var contrast: Contrast = .clahe
    /// Fill `asp_dsm` holes from valid pixels at most this many pixels away (0: no filling).
    public var fillHoles = 0
    public var overwrite = false
    /// Rows per strip of the final pass (memory: a few strips of every band).
    public var stripRows = 256

    public static let nodata = -9999.0

    public init(dsm: RasterSource, out: String) {
        self.dsm = dsm
        self.out = out
    }

    /// Every raster the preparation reads.
    public var sources: [RasterSource] {
        [dsm] + orthos + [triangulationError, red, nir, ndvi, lidar, lidarDTM, validMask].compactMap { $0 }
    }

    /// One input to warp: the band it becomes (or an intermediate name) and how.
    struct Input {
        let name: String
        let source: RasterSource
        let resampling: Resampling
        let allBands: Bool
    }

    func inputs() throws -> [Input] {
        if orthos.count > 2 { throw DataError(orthos[2].path, "at most two orthoimages (got \(orthos.count))") }
        if (red == nil) != (nir == nil) {
            throw DataError((red ?? nir)!.path, "NDVI needs both a red and a NIR raster (only the \(red == nil ? "NIR" : "red") one is given)")
        }
        if let ndvi, red != nil { throw DataError(ndvi.path, "give either a ready NDVI or red and NIR rasters, not both") }
        if fillHoles < 0 { throw DataError(dsm.path, "the hole-filling distance must be ≥ 0 (got \(fillHoles))") }
        var list = [Input(name: Band.aspDSM, source: dsm, resampling: resampling, allBands: false)]
        for (k, ortho) in orthos.enumerated() {
            list.append(Input(name: k == 0 ? Band.ortho1 : Band.ortho2, source: ortho, resampling: resampling, allBands: true))
        }
        let optional: [(String, RasterSource?, Resampling)] = [
            (Band.triangulationError, triangulationError, resampling), (Band.ndvi, ndvi, resampling),
            (ScenePreparation.red, red, resampling), (ScenePreparation.nir, nir, resampling),
            (Band.lidarDSM, lidar, resampling), (Band.lidarDTM, lidarDTM, resampling),
            (ScenePreparation.validity, validMask, .nearest),
        ]
        for (name, source, method) in optional {
            if let source { list.append(Input(name: name, source: source, resampling: method, allBands: false)) }
        }
        return list
    }

    static let red = "red"
    static let nir = "nir"
    static let validity = "valid_mask"

    /// The scene's bands, in DeepDEM's order.
    static func outputBands(of names: [String]) -> [String] {
        var bands = names.filter { $0 != red && $0 != nir && $0 != validity }
        if names.contains(red) { bands.append(Band.ndvi) }
        bands.append(Band.nodataMask)
        let order = Band.inputs + Band.targets
        return bands.sorted { order.firstIndex(of: $0)! < order.firstIndex(of: $1)! }
    }

    /// Prepares the scene; `progress` gets the fraction done.
    public func run(progress: ((Double) -> Void)? = nil) throws -> PreparedScene {
        let inputs = try self.inputs()
        let destination = try SceneDestination(folder: out, overwrite: overwrite)
        // GDAL's progress may step back a hair between chunks; callers see it only grow.
        var reported = 0.0
        let forward = { (fraction: Double) in
            if fraction > reported { reported = fraction; progress?(fraction) }
        }
        do {
            return try prepare(inputs, into: destination, progress: forward)
        } catch {
            destination.cleanUp()
            throw error
        }
    }

    private func prepare(_ inputs: [Input], into destination: SceneDestination, progress: ((Double) -> Void)?) throws -> PreparedScene {
        let opened = try inputs.map { try OpenedSource($0.source, allBands: $0.allBands) }
        let reference = orthos.isEmpty ? opened[0] : opened[1]
        let grid = try TargetGrid.choose(reference: reference, inputs: opened, crs: crs, resolution: resolution)

        let work = try destination.makeWorkFolder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let warpShare = 0.6, fillShare = fillHoles > 0 ? 0.05 : 0
        var warped: [String: String] = [:]
        for (k, (input, source)) in zip(inputs, opened).enumerated() {
            let path = URL(fileURLWithPath: work).appendingPathComponent("\(input.name).tif").path
            let start = warpShare * Double(k) / Double(inputs.count)
            try Warp.run(source, onto: grid, resampling: input.resampling, to: path) {
                progress?(start + warpShare * $0 / Double(inputs.count))
            }
            warped[input.name] = path
        }
        if fillHoles > 0, let path = warped[Band.aspDSM] {
            try Warp.fillHoles(path: path, distance: fillHoles, reportAs: dsm.path) {
                progress?(warpShare + fillShare * $0)
            }
        }
        let composer = try SceneComposer(grid: grid, warped: warped, contrast: contrast, stripRows: stripRows)
        let bands = ScenePreparation.outputBands(of: inputs.map(\.name))
        let writers = try bands.map {
            try RasterWriter(path: Scene.file(destination.writeFolder, $0), grid: grid,
                             nodata: $0 == Band.nodataMask ? nil : ScenePreparation.nodata, overwrite: true)
        }
        let start = warpShare + fillShare
        let validCounts = try composer.compose(into: Dictionary(uniqueKeysWithValues: zip(bands, writers))) {
            progress?(start + (1 - start) * $0)
        }
        let usable = validCounts[Band.nodataMask] ?? 0
        if usable == 0 {
            let fewest = validCounts.filter { $0.key != Band.nodataMask }.min { $0.value < $1.value }
            let detail = fewest.map { "; fewest valid: \($0.key), \($0.value) of \(grid.pixelCount) px" } ?? ""
            throw DataError(out, "no pixel is valid in every input on the common \(grid.width)×\(grid.height) px grid\(detail)")
        }
        for writer in writers { try writer.commit() }
        try destination.finish()
        destination.removeBands(except: bands)
        return PreparedScene(folder: out, grid: grid, bands: bands,
                             validFraction: validCounts.mapValues { Double($0) / Double(grid.pixelCount) })
    }
}

/// What `prepare` wrote.
public struct PreparedScene: Sendable {
    public let folder: String
    public let grid: Grid
    public let bands: [String]
    /// Fraction of valid pixels per band (for `nodata_mask`: of pixels usable for training).
    public let validFraction: [String: Double]
}
