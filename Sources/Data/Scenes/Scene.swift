import Foundation

/// DeepDEM's band names; a prepared scene holds one `final_<band>.tif` per band.
public enum Band {
    public static let aspDSM = "asp_dsm"
    public static let ortho1 = "ortho_channel1"
    public static let ortho2 = "ortho_channel2"
    public static let ndvi = "ndvi"
    public static let nodataMask = "nodata_mask"
    public static let triangulationError = "triangulation_error"
    public static let lidarDSM = "lidar_data"
    public static let lidarDTM = "lidar_dtm_data"

    /// Every input band, in DeepDEM's default order.
    public static let inputs = [aspDSM, ortho1, ortho2, ndvi, nodataMask, triangulationError]
    public static let targets = [lidarDSM, lidarDTM]
}

/// A scene opened for one run: the input bands in the run's order (`asp_dsm` first), an optional
/// target, and `nodata_mask` whenever the folder has it (it restricts the valid pixels even when it
/// is not an input). Opening checks that every file is there, readable and on `asp_dsm`'s grid;
/// nothing is read until a window is asked for.
public final class Scene: @unchecked Sendable {
    public let folder: String
    public let bands: [String]
    public let target: String?
    public let grid: Grid
    let inputs: [Raster]
    let targetRaster: Raster?
    let nodataMask: Raster?

    public init(folder: String, bands: [String], target: String?) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) else {
            throw DataError(folder, "no such scene folder")
        }
        guard isFolder.boolValue else { throw DataError(folder, "is a file; a scene is a folder of final_<band>.tif") }
        guard bands.first == Band.aspDSM else {
            throw DataError(folder, "the bands must start with \(Band.aspDSM) (got \(bands.joined(separator: ", ")))")
        }
        if Set(bands).count != bands.count { throw DataError(folder, "a band is listed twice in \(bands.joined(separator: ", "))") }
        if let target, bands.contains(target) { throw DataError(folder, "the target \(target) is also an input band") }

        func open(_ band: String) throws -> Raster {
            let path = Scene.file(folder, band)
            guard FileManager.default.fileExists(atPath: path) else {
                throw DataError(path, "missing (band \(band) is needed)")
            }
            return try Raster(path: path)
        }
        let inputs = try bands.map(open)
        let reference = inputs[0]
        let targetRaster = try target.map(open)
        let maskPath = Scene.file(folder, Band.nodataMask)
        let nodataMask = try bands.firstIndex(of: Band.nodataMask).map { inputs[$0] }
            ?? (FileManager.default.fileExists(atPath: maskPath) ? Raster(path: maskPath) : nil)
        for raster in inputs.dropFirst() + [targetRaster, nodataMask].compactMap({ $0 }) {
            if let difference = raster.grid.difference(from: reference.grid) {
                throw DataError(raster.path, "grid differs from \(URL(fileURLWithPath: reference.path).lastPathComponent): \(difference)")
            }
        }
        self.folder = folder
        self.bands = bands
        self.target = target
        self.grid = reference.grid
        self.inputs = inputs
        self.targetRaster = targetRaster
        self.nodataMask = nodataMask
    }

    public static func file(_ folder: String, _ band: String) -> String {
        URL(fileURLWithPath: folder).appendingPathComponent("final_\(band).tif").path
    }

    /// The bands a folder holds, from its file names, sorted.
    public static func bandsPresent(in folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { $0.hasPrefix("final_") && $0.hasSuffix(".tif") }
            .map { String($0.dropFirst("final_".count).dropLast(".tif".count)) }
            .sorted()
    }

    public var aspDSM: Raster { inputs[0] }
    public var targetFile: Raster? { targetRaster }
    public func input(_ band: String) -> Raster? { bands.firstIndex(of: band).map { inputs[$0] } }

    /// Channel indices of the two orthos when the run has both (the ones a channel swap exchanges).
    public var orthoChannels: (Int, Int)? {
        guard let a = bands.firstIndex(of: Band.ortho1), let b = bands.firstIndex(of: Band.ortho2) else { return nil }
        return (a, b)
    }
}
