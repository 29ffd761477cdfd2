import Foundation

/// The groups `deepdem evaluate` reports beside the overall metrics: slope bins of the truth and
/// the classes of a land-cover raster.
public enum PixelGroups {
    /// One group per bin [edges[k], edges[k+1]) of slope in degrees, the last [edges.last, 90];
    /// pixels without a slope (the grid's edge, next to nodata) are in none.
    public static func slopeBins(_ terrain: Terrain, edges: [Double]) -> [PixelGroup] {
        precondition(!edges.isEmpty && zip(edges, edges.dropFirst()).allSatisfy { $0 < $1 }, "slope edges must increase")
        var groups = edges.indices.map { k in
            PixelGroup(name: k + 1 < edges.count ? "slope \(format(edges[k]))–\(format(edges[k + 1]))°" : "slope ≥ \(format(edges[k]))°",
                       width: terrain.width, height: terrain.height)
        }
        for i in terrain.tanSlope.indices where !terrain.tanSlope[i].isNaN {
            let slope = terrain.slopeDegrees(i)
            guard slope >= edges[0] else { continue }
            let k = edges.lastIndex { $0 <= slope }!
            groups[k].insert(i)
        }
        return groups
    }

    /// One group per integer value present in `classes` (NaN: no class), in increasing order, named
    /// by `names` where it has the code; each grown by `dilate` pixels.
    public static func classes(_ classes: [Float], width: Int, height: Int, names: [Int: String], dilate: Int,
                               path: String) throws -> [(code: Int, group: PixelGroup)] {
        var members: [Int: PixelGroup] = [:]
        for (i, v) in classes.enumerated() where !v.isNaN {
            guard v == v.rounded(), abs(v) < 1e9 else {
                throw DataError(path, "holds \(v) at pixel (\(i % width), \(i / width)); a class raster holds integer codes")
            }
            let code = Int(v)
            if members[code] == nil {
                members[code] = PixelGroup(name: names[code].map { "\(code) \($0)" } ?? "class \(code)", width: width, height: height)
            }
            members[code]!.insert(i)
        }
        guard !members.isEmpty else { throw DataError(path, "has no valid pixel: no class to report") }
        return members.keys.sorted().map { ($0, members[$0]!.dilated(by: dilate)) }
    }

    /// Class names from a text file: one `CODE NAME` per line (also `CODE,NAME`, `CODE: NAME` or a
    /// tab), blank lines and `#` comments skipped.
    public static func classNames(_ path: String) throws -> [Int: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw DataError(path, "cannot read the class names") }
        var names: [Int: String] = [:]
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let code = trimmed.prefix { $0.isNumber || $0 == "-" }
            let rest = trimmed.dropFirst(code.count).drop { $0 == "," || $0 == ":" || $0 == "\t" || $0 == " " }
            guard let value = Int(code), !rest.isEmpty else {
                throw DataError(path, "line \(n + 1) is not 'CODE NAME': \(trimmed.prefix(60))")
            }
            names[value] = String(rest).trimmingCharacters(in: .whitespaces)
        }
        return names
    }

    static func format(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }
}
