import CGDAL
import Foundation

/// How a GeoTIFF was made, stored as GDAL metadata items of the dataset's default domain, so that
/// `gdalinfo` lists them under "Metadata:" and `deepdem info FILE.tif` prints them. Every item's
/// name starts with `prefix`; a refined DSM also names its checkpoint (`Refinement` adds those).
public enum Provenance {
    public static let prefix = "DEEPDEM_"

    /// Items every raster this process writes carries: the executable sets them once at start
    /// (version, commit, command line); a library's own tests leave them empty.
    nonisolated(unsafe) public static var process: [String: String] = [:]

    /// The items for a deepdem command: its version, commit and argument vector (shell-quoted, so
    /// the line can be run again).
    public static func command(version: String, commit: String, arguments: [String]) -> [String: String] {
        [prefix + "VERSION": version, prefix + "COMMIT": commit,
         prefix + "COMMAND": arguments.map(shellQuoted).joined(separator: " ")]
    }

    /// The deepdem items of a raster's default metadata domain, prefix included.
    public static func read(_ path: String) throws -> [String: String] {
        GDAL.ensureRegistered()
        try GDAL.checkRasterFile(path)
        let dataset = try GDAL.call(path, "not a readable raster") { GDALOpen(path, GA_ReadOnly) }
        defer { GDALClose(dataset) }
        var items: [String: String] = [:]
        guard var entry = GDALGetMetadata(dataset, nil) else { return items }
        while let pointer = entry.pointee {
            let item = String(cString: pointer)
            if item.hasPrefix(prefix), let equals = item.firstIndex(of: "=") {
                items[String(item[..<equals])] = String(item[item.index(after: equals)...])
            }
            entry += 1
        }
        return items
    }

    static func shellQuoted(_ word: String) -> String {
        let plain = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_./=:,+@%"))
        if !word.isEmpty, word.unicodeScalars.allSatisfy(plain.contains) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
