import ArgumentParser
import Data
import Foundation

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn raw rasters (any CRS and resolution) into a scene folder of final_<band>.tif.",
        discussion: """
            Every input is warped with GDAL onto one grid: the first ortho's (the DSM's without an \
            ortho), cropped to the common extent of all inputs, unless --crs/--resolution choose \
            another (its pixel edges then fall on multiples of the resolution). NDVI = \
            (NIR − red)/(NIR + red); nodata_mask = 1 where every input and target is valid. Orthos \
            are normalized to [0, 1] by CLAHE as DeepDEM does (skimage's equalize_adapthist \
            defaults), or by a 2–98 % percentile stretch. A file with several bands needs FILE:N \
            (band N from 1), except an ortho, which then becomes the mean of its bands.
            Every option can come from a YAML/JSON file (--config) under the same name with \
            underscores (triangulation_error: x.tif, ortho: [a.tif, b.tif], fill_holes: 3); \
            flags win over the file. Relative paths are relative to the working directory.
            """)

    @Option(help: "The initial DSM (e.g. from the Ames Stereo Pipeline).")
    var dsm: String?

    @Option(name: .customLong("ortho"), help: "An orthoimage; give it once or twice. The first sets the grid.")
    var orthos: [String] = []

    @Option(name: .customLong("triangulation-error"), help: "ASP's triangulation (intersection) error.")
    var triangulationError: String?

    @Option(help: "Red reflectance, for NDVI (with --nir).")
    var red: String?

    @Option(help: "Near-infrared reflectance, for NDVI (with --red).")
    var nir: String?

    @Option(help: "A ready NDVI raster (instead of --red and --nir).")
    var ndvi: String?

    @Option(help: "The lidar DSM (target lidar_data).")
    var lidar: String?

    @Option(name: .customLong("lidar-dtm"), help: "The lidar DTM (target lidar_dtm_data).")
    var lidarDTM: String?

    @Option(name: .customLong("valid-mask"), help: "Extra validity raster (non-zero = valid), folded into nodata_mask.")
    var validMask: String?

    @Option(help: "Scene folder to write (its parent must exist).")
    var out: String?

    @Option(parsing: .number, help: "Target pixel size, in units of the target CRS.")
    var resolution: Double?

    @Option(help: "Target CRS (e.g. EPSG:32610, a WKT or PROJ string).")
    var crs: String?

    @Option(help: "Resampling of continuous data: \(Resampling.allCases.map(\.rawValue).joined(separator: ", ")) (default bilinear).")
    var resampling: String?

    @Option(help: "Ortho normalization: clahe, stretch (2–98 %) or none (default clahe).")
    var contrast: String?

    @Option(name: .customLong("fill-holes"), parsing: .number, help: "Fill DSM holes from valid pixels at most N pixels away (default 0: off).")
    var fillHoles: Int?

    @Flag(help: "Replace the scene in an existing --out folder.")
    var overwrite = false

    @Option(help: "A YAML or JSON file with the same settings.")
    var config: String?

    static let keys = ["dsm", "ortho", "triangulation_error", "red", "nir", "ndvi", "lidar", "lidar_dtm", "valid_mask",
                       "out", "resolution", "crs", "resampling", "contrast", "fill_holes", "overwrite"]

    func run() throws {
        guarded {
            let preparation = try settings()
            try InputGuard.check(files: [], folders: [preparation.out],
                                 reading: preparation.sources.map(\.path) + [config].compactMap { $0 })
            let scene = try ProgressLine("prepare").run { progress in try preparation.run(progress: progress) }
            let t = scene.grid.geoTransform
            let usable = scene.validFraction[Band.nodataMask] ?? 0
            print("wrote \(scene.folder): \(scene.bands.joined(separator: ", ")); \(scene.grid.width)×\(scene.grid.height) px of "
                + "\(short(t[1]))×\(short(-t[5])) in \(Grid.crsName(scene.grid.crsWKT)); "
                + String(format: "%.1f %% of the pixels valid in every input", 100 * usable))
        }
    }

    func short(_ value: Double) -> String { String(format: "%g", value) }

    /// The configuration file's settings with the flags over them.
    func settings() throws -> ScenePreparation {
        var file: [String: Any] = [:]
        if let config {
            let mapping = try readConfigMapping(config)
            if let unknown = mapping.keys.sorted().first(where: { !Prepare.keys.contains($0) }) {
                throw CLIError("\(config): unknown key '\(unknown)' (known: \(Prepare.keys.joined(separator: ", ")))")
            }
            file = mapping
        }
        let source = config ?? ""
        func text(_ key: String, _ flag: String?) throws -> String? {
            if let flag { return flag }
            guard let value = file[key], !(value is NSNull) else { return nil }
            if let string = value as? String { return string }
            throw CLIError("\(source): '\(key)' must be a path or text, not \(value)")
        }
        func number(_ key: String, _ flag: Double?) throws -> Double? {
            if let flag { return flag }
            guard let value = file[key], !(value is NSNull) else { return nil }
            if let n = value as? Double { return n }
            if let n = value as? Int { return Double(n) }
            throw CLIError("\(source): '\(key)' must be a number, not \(value)")
        }
        var orthos = self.orthos
        if orthos.isEmpty, let value = file["ortho"], !(value is NSNull) {
            if let one = value as? String { orthos = [one] }
            else if let list = value as? [Any], list.allSatisfy({ $0 is String }) { orthos = list.map { $0 as! String } }
            else { throw CLIError("\(source): 'ortho' must be a path or a list of one or two paths") }
        }
        guard let dsm = try text("dsm", dsm) else { throw CLIError("--dsm is required (or dsm: in --config)") }
        guard let out = try text("out", out) else { throw CLIError("--out is required (or out: in --config)") }
        if orthos.count > 2 { throw CLIError("--ortho is given \(orthos.count) times; DeepDEM takes one or two orthoimages") }

        var p = ScenePreparation(dsm: RasterSource(dsm), out: out)
        p.orthos = orthos.map(RasterSource.init)
        p.triangulationError = try text("triangulation_error", triangulationError).map(RasterSource.init)
        p.red = try text("red", red).map(RasterSource.init)
        p.nir = try text("nir", nir).map(RasterSource.init)
        p.ndvi = try text("ndvi", ndvi).map(RasterSource.init)
        p.lidar = try text("lidar", lidar).map(RasterSource.init)
        p.lidarDTM = try text("lidar_dtm", lidarDTM).map(RasterSource.init)
        p.validMask = try text("valid_mask", validMask).map(RasterSource.init)
        p.crs = try text("crs", crs)
        p.resolution = try number("resolution", resolution)
        if let name = try text("resampling", resampling) {
            guard let method = Resampling(rawValue: name) else {
                throw CLIError("unknown resampling '\(name)' (choose \(Resampling.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            p.resampling = method
        }
        if let name = try text("contrast", contrast) {
            guard let method = Contrast(rawValue: name) else {
                throw CLIError("unknown contrast '\(name)' (choose \(Contrast.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            p.contrast = method
        }
        if let distance = try number("fill_holes", fillHoles.map(Double.init)) {
            // The bound keeps Int(distance) from trapping on a value such as 1e300 from a config.
            guard (0...1_000_000).contains(distance), distance == distance.rounded() else {
                throw CLIError("--fill-holes must be a whole number of pixels between 0 and 1000000 (got \(short(distance)))")
            }
            p.fillHoles = Int(distance)
        }
        if overwrite { p.overwrite = true }
        else if let value = file["overwrite"] {
            guard let flag = value as? Bool else { throw CLIError("\(source): 'overwrite' must be true or false") }
            p.overwrite = flag
        }
        return p
    }
}
