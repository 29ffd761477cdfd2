import Data
import Foundation
import Primitives
import XCTest

/// `deepdem evaluate --coregister`, `--by-slope`, `--classes`: shifts recovered from files, slope
/// bins as gdaldem's slope puts the pixels, class statistics equal to sums taken here.
final class EvaluateGroupsTests: XCTestCase {
    static let (width, height) = (120, 100)

    /// Hills on 1 m pixels (row 0 north), moved east/north by (dx, dy) m and raised by dz.
    static func hills(dx: Double = 0, dy: Double = 0, dz: Double = 0) -> [Float] {
        (0..<width * height).map { i in
            let e = Double(i % width) + 0.5 - dx, n = Double(height - i / width) - 0.5 - dy
            return Float(14 * sin(e / 19) * cos(n / 27) + 6 * sin((e + 2 * n) / 11) + 0.05 * e + dz)
        }
    }

    func write(_ values: [Float], _ name: String, in folder: URL, width: Int = EvaluateGroupsTests.width) throws -> String {
        let grid = try Grid(width: width, height: values.count / width, originX: 500_000, originY: 4_000_000, pixelSize: 1, epsg: 32610)
        let path = folder.appendingPathComponent(name).path
        try RasterWriter.write(values, grid: grid, nodata: -9999, to: path)
        return path
    }

    func evaluate(_ arguments: [String]) throws -> [String: Any] {
        let output = try runDeepDEM(["evaluate"] + arguments + ["--json"])
        XCTAssertEqual(output.status, 0, output.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any], output.stdout)
    }

    /// The initial DSM's and the prediction's own shifts are found (within 0.05 px and 0.01 m) and
    /// reported, and the statistics are those of the moved DSMs.
    func testCoregisteredStatistics() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let truth = try write(Self.hills(), "t.tif", in: folder)
        let initial = try write(Self.hills(dx: 0.42, dy: -0.31, dz: 0.6), "i.tif", in: folder)
        let refined = try write(Self.hills(dx: -0.12, dy: 0.2, dz: -0.05), "r.tif", in: folder)
        let plain = try evaluate(["--prediction", refined, "--truth", truth, "--initial", initial])
        let json = try evaluate(["--prediction", refined, "--truth", truth, "--initial", initial, "--coregister"])
        let shifts = try XCTUnwrap(json["coregistration"] as? [String: [String: Double]])
        for (name, expected) in [("initial", (0.42, -0.31, 0.6)), ("refined", (-0.12, 0.2, -0.05))] {
            let s = try XCTUnwrap(shifts[name], name)
            XCTAssertEqual(try XCTUnwrap(s["dx"]), expected.0, accuracy: 0.05, name)
            XCTAssertEqual(try XCTUnwrap(s["dy"]), expected.1, accuracy: 0.05, name)
            XCTAssertEqual(try XCTUnwrap(s["dz"]), expected.2, accuracy: 0.01, name)
        }
        func mae(_ j: [String: Any], _ key: String) throws -> Double { try XCTUnwrap((j[key] as? [String: Double])?["mae"]) }
        XCTAssertLessThan(try mae(json, "initial"), 0.1 * (try mae(plain, "initial")))
        let table = try runDeepDEM(["evaluate", "--prediction", refined, "--truth", truth, "--initial", initial, "--coregister"])
        XCTAssertTrue(table.stdout.contains("co-registered initial: dx +0.4"), table.stdout)

        let report = folder.appendingPathComponent("report.md").path
        let reported = try runDeepDEM(["evaluate", "--prediction", refined, "--truth", truth, "--initial", initial, "--coregister",
                                       "--by-slope", "0,10", "--report", report])
        XCTAssertEqual(reported.status, 0, reported.stderr)
        let markdown = try String(contentsOfFile: report, encoding: .utf8)
        for part in ["## Co-registration", "| initial | +0.4", "## Overall (metres)", "| all | refined |", "## By slope",
                     "| slope ≥ 10° | initial |", "![error maps](report.png)"] {
            XCTAssertTrue(markdown.contains(part), "report lacks '\(part)':\n\(markdown)")
        }
        let png = try Data(contentsOf: folder.appendingPathComponent("report.png"))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        assertRefused(try runDeepDEM(["evaluate", "--prediction", refined, "--truth", truth, "--report", report]),
                      "\(report): already exists (pass --overwrite to replace it)")
        assertRefused(try runDeepDEM(["evaluate", "--prediction", refined, "--truth", truth, "--report", folder.path + "/r.txt"]),
                      "must name a Markdown file (.md)")

        let flat = try write([Float](repeating: 3, count: Self.width * Self.height), "flat.tif", in: folder)
        assertRefused(try runDeepDEM(["evaluate", "--prediction", refined, "--truth", flat, "--coregister"]),
                      "\(refined): cannot be co-registered: 0 valid pixels with slope above 1°")
        assertRefused(try runDeepDEM(["evaluate", "--prediction", refined, "--truth", truth, "--stable", truth]),
                      "--stable chooses the pixels of --coregister's fit")
    }

    /// Each slope bin holds the pixels whose `gdaldem slope` of the truth falls in it, and its MAE
    /// is theirs; bad edges are one line.
    func testSlopeBinsAreGdaldemsSlopes() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let truthValues = Self.hills()
        var random = SplitMix64(seed: 5)
        let refinedValues = truthValues.map { $0 + Float(random.unitDouble() * 2 - 0.7) }
        let truth = try write(truthValues, "t.tif", in: folder), refined = try write(refinedValues, "r.tif", in: folder)
        let slopeFile = folder.appendingPathComponent("slope.tif").path
        let gdaldem = try runProcess("/usr/bin/env", ["gdaldem", "slope", "-q", truth, slopeFile])
        XCTAssertEqual(gdaldem.status, 0, gdaldem.stderr)
        let slope = try Raster(path: slopeFile).readAll()
        let edges = [0.0, 5, 10, 20, 30]
        let json = try evaluate(["--prediction", refined, "--truth", truth, "--by-slope", "0,5,10,20,30"])
        let groups = try XCTUnwrap(json["groups"] as? [[String: Any]])
        XCTAssertEqual(groups.map { $0["name"] as? String }, ["slope 0–5°", "slope 5–10°", "slope 10–20°", "slope 20–30°", "slope ≥ 30°"])
        for (k, group) in groups.enumerated() {
            let low = edges[k], high = k + 1 < edges.count ? edges[k + 1] : 90
            let errors = slope.indices.filter { !slope[$0].isNaN && Double(slope[$0]) >= low && Double(slope[$0]) < high }
                .map { Double(refinedValues[$0]) - Double(truthValues[$0]) }
            let nearEdge = slope.filter { !$0.isNaN && (abs(Double($0) - low) < 1e-4 || abs(Double($0) - high) < 1e-4) }.count
            let metrics = try XCTUnwrap(group["refined"] as? [String: Double])
            XCTAssertEqual(try XCTUnwrap(metrics["count"]), Double(errors.count), accuracy: Double(nearEdge), "bin \(k)")
            XCTAssertGreaterThan(errors.count, 50, "bin \(k) should hold pixels for the test to mean something")
            if nearEdge == 0 {
                XCTAssertEqual(try XCTUnwrap(metrics["mae"]), errors.map(abs).reduce(0, +) / Double(errors.count), accuracy: 1e-5)
            }
        }
        assertRefused(try runDeepDEM(["evaluate", "--prediction", refined, "--truth", truth, "--by-slope", "0,10,5"]),
                      "--by-slope 0,10,5: the bin edges must increase")
        assertRefused(try runDeepDEM(["evaluate", "--prediction", refined, "--truth", truth, "--by-slope", "0,x"]),
                      "--by-slope 0,x: must be slopes in degrees")
    }

    /// One row per class code (named from --class-names), each with the count, bias, MAE and RMSE of
    /// sums taken here; --dilate grows each class by the square neighbourhood; another grid is refused.
    func testClassesEqualSums() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (w, h) = (Self.width, Self.height)
        var random = SplitMix64(seed: 8)
        let truthValues = (0..<w * h).map { _ in Float(200 + 10 * random.unitDouble()) }
        let refinedValues = truthValues.map { $0 + Float(random.unitDouble() * 3 - 1) }
        let initialValues = truthValues.map { $0 + Float(random.unitDouble() * 6 - 2) }
        let codes: [Float] = (0..<w * h).map { i in
            let (x, y) = (i % w, i / w)
            if x < 3 { return .nan }
            return (x / 30 + y / 40) % 3 == 0 ? 11 : ((x * 7 + y) % 13 == 0 ? 90 : 42)
        }
        let paths = try [("t.tif", truthValues), ("r.tif", refinedValues), ("i.tif", initialValues), ("c.tif", codes)].map { try write($0.1, $0.0, in: folder) }
        let names = folder.appendingPathComponent("names.txt")
        try "# NLCD\n11 Open Water\n42,Evergreen Forest\n".write(to: names, atomically: true, encoding: .utf8)
        for dilate in [0, 2] {
            let json = try evaluate(["--prediction", paths[1], "--truth", paths[0], "--initial", paths[2], "--classes", paths[3],
                                     "--class-names", names.path, "--dilate", "\(dilate)"])
            let groups = try XCTUnwrap(json["groups"] as? [[String: Any]])
            XCTAssertEqual(groups.map { $0["name"] as? String }, ["11 Open Water", "42 Evergreen Forest", "class 90"])
            for (group, code) in zip(groups, [Float(11), 42, 90]) {
                let members = (0..<w * h).filter { i in
                    let (x, y) = (i % w, i / w)
                    for yy in max(0, y - dilate)...min(h - 1, y + dilate) {
                        for xx in max(0, x - dilate)...min(w - 1, x + dilate) where codes[yy * w + xx] == code { return true }
                    }
                    return false
                }
                for (key, values) in [("refined", refinedValues), ("initial", initialValues)] {
                    let e = members.map { Double(values[$0]) - Double(truthValues[$0]) }, n = Double(e.count)
                    let m = try XCTUnwrap(group[key] as? [String: Double])
                    XCTAssertEqual(m["count"], n, "\(code) \(key) dilate \(dilate)")
                    XCTAssertEqual(try XCTUnwrap(m["bias"]), e.reduce(0, +) / n, accuracy: 1e-9 * 200)
                    XCTAssertEqual(try XCTUnwrap(m["mae"]), e.map(abs).reduce(0, +) / n, accuracy: 1e-9 * 200)
                    XCTAssertEqual(try XCTUnwrap(m["rmse"]), (e.map { $0 * $0 }.reduce(0, +) / n).squareRoot(), accuracy: 1e-9 * 200)
                }
            }
        }
        let other = try write([Float](repeating: 1, count: 50 * 40), "o.tif", in: folder, width: 50)
        assertRefused(try runDeepDEM(["evaluate", "--prediction", paths[1], "--truth", paths[0], "--classes", other]), "\(other): grid differs")
        let fractional = try write(codes.map { $0 + 0.5 }, "f.tif", in: folder)
        assertRefused(try runDeepDEM(["evaluate", "--prediction", paths[1], "--truth", paths[0], "--classes", fractional]),
                      "a class raster holds integer codes")
        assertRefused(try runDeepDEM(["evaluate", "--prediction", paths[1], "--truth", paths[0], "--dilate", "2"]),
                      "--class-names and --dilate describe --classes")
    }
}
