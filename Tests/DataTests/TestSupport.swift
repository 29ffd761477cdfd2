import Data
import Foundation
import XCTest

/// A fresh folder per test, removed afterwards.
func makeTemporaryFolder(_ name: String = #function) throws -> URL {
    let clean = name.filter { $0.isLetter || $0.isNumber }
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("deepdem-data-\(clean)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Runs a GDAL command-line tool and returns its standard output.
func gdalTool(_ tool: String, _ arguments: [String]) throws -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw DataError(tool, "exited with \(process.terminationStatus) for \(arguments.joined(separator: " "))")
    }
    return data
}

func gdalinfo(_ path: String) throws -> [String: Any] {
    let data = try gdalTool("gdalinfo", ["-json", "-mm", path])
    return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
}

/// Pixel values as GDAL's own gdal_translate reads them (raw, nodata not interpreted).
func gdalTranslateValues(_ path: String, folder: URL) throws -> [Float] {
    let raw = folder.appendingPathComponent("gdal-raw-\(UInt32.random(in: 0...UInt32.max)).bin").path
    _ = try gdalTool("gdal_translate", ["-q", "-of", "ENVI", "-ot", "Float32", path, raw])
    let data = try Data(contentsOf: URL(fileURLWithPath: raw))
    return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
}

/// A small UTM grid for tests.
func testGrid(width: Int, height: Int, originX: Double = 500_000, originY: Double = 5_200_000) throws -> Grid {
    try Grid(width: width, height: height, originX: originX, originY: originY, pixelSize: 1, epsg: 32610)
}

/// Writes a scene folder: one `final_<band>.tif` per entry, each from a per-pixel function
/// (NaN for nodata, written as the declared value when `nodata` is given).
func writeScene(_ folder: URL, grid: Grid, nodata: Double? = -3.4028234663852886e38,
                bands: [String: (Int, Int) -> Float], replace: Bool = false) throws {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    for (band, value) in bands {
        var values = [Float](repeating: 0, count: grid.pixelCount)
        for y in 0..<grid.height { for x in 0..<grid.width { values[y * grid.width + x] = value(x, y) } }
        try RasterWriter.write(values, grid: grid, nodata: nodata, to: Scene.file(folder.path, band), overwrite: replace)
    }
}

/// A fully valid scene of gradients in `folder` (asp_dsm x + 1000·y, orthos x and −y, lidar x + y),
/// width × height px, and its validity map: where chips may be drawn is all that varies.
func gradientSceneMap(_ folder: URL, width: Int, height: Int) throws -> ValidityMap {
    try writeScene(folder, grid: testGrid(width: width, height: height),
                   bands: [Band.aspDSM: { x, y in Float(x + 1000 * y) }, Band.ortho1: { x, _ in Float(x) },
                           Band.ortho2: { _, y in Float(-y) }, Band.lidarDSM: { x, y in Float(x + y) }])
    let scene = try Scene(folder: folder.path, bands: [Band.aspDSM, Band.ortho1, Band.ortho2], target: Band.lidarDSM)
    return try ValidityMap(scene: scene)
}
