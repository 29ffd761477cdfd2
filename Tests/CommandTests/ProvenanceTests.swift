import Data
import Foundation
import NN
import XCTest

/// Every GeoTIFF deepdem writes says how it was made (GDAL metadata `DEEPDEM_*`), and `deepdem
/// info` reads it back from a refined DSM.
final class ProvenanceTests: XCTestCase {
    /// A refined DSM names the build, the command, and the checkpoint by path and SHA-256 (checked
    /// against sha256sum, not against our own digest), its arch, bands, chip size and gsf; gdalinfo
    /// shows the same items, also in a COG; `info` prints them.
    func testRefinedDSMNamesItsCheckpointAndCommand() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try makeModelAndScene(in: folder, size: 64)
        let checkpoint = folder + "/model.safetensors", out = folder + "/refined.tif"
        let arguments = ["refine", "--checkpoint", checkpoint, "--data", folder + "/scene", "--out", out, "--cog"]
        let refine = try runDeepDEM(arguments)
        XCTAssertEqual(refine.status, 0, refine.stderr)

        let digest = try runProcess("/usr/bin/env", ["sha256sum", checkpoint])
        let sha = String(digest.stdout.prefix(64))
        let info = try runProcess("/usr/bin/env", ["gdalinfo", out])
        XCTAssertEqual(info.status, 0, info.stderr)
        let config = try Checkpoint.readConfig(checkpoint)
        let expected = ["DEEPDEM_CHECKPOINT_SHA256=\(sha)", "DEEPDEM_CHECKPOINT=\(checkpoint)", "DEEPDEM_ARCH=unet",
                        "DEEPDEM_BANDS=\(config.bands.joined(separator: ","))", "DEEPDEM_CHIP_SIZE=64",
                        "DEEPDEM_GSF=\(config.gsf)", "DEEPDEM_VERSION=", "DEEPDEM_COMMIT="]
        for item in expected { XCTAssertTrue(info.stdout.contains("  " + item), "gdalinfo lacks \(item):\n\(info.stdout)") }
        let command = try XCTUnwrap(try Provenance.read(out)["DEEPDEM_COMMAND"])
        XCTAssertTrue(command.hasSuffix("deepdem " + arguments.joined(separator: " ")), command)

        let shown = try runDeepDEM(["info", out])
        XCTAssertEqual(shown.status, 0, shown.stderr)
        for line in ["checkpoint sha256  \(sha)", "arch               unet", "chip size          64"] {
            XCTAssertTrue(shown.stdout.contains(line), "info lacks '\(line)':\n\(shown.stdout)")
        }
    }

    /// The scene bands synth and prepare write carry the build and the command too; a GeoTIFF that
    /// deepdem did not write is one line from `info`, exit 1.
    func testEveryWrittenBandCarriesTheCommand() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let synth = try runDeepDEM(["synth", "--out", folder + "/scene", "--size", "64", "--seed", "3"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        for band in try FileManager.default.contentsOfDirectory(atPath: folder + "/scene") {
            let items = try Provenance.read(folder + "/scene/" + band)
            XCTAssertTrue(items["DEEPDEM_COMMAND"]?.hasSuffix("synth --out \(folder)/scene --size 64 --seed 3") ?? false,
                          "\(band): \(items)")
            XCTAssertNil(items["DEEPDEM_CHECKPOINT_SHA256"], "\(band) names a checkpoint")
        }
        let foreign = folder + "/foreign.tif"
        let create = try runProcess("/usr/bin/env", ["gdal_create", "-q", "-of", "GTiff", "-outsize", "8", "8", "-ot", "Float32", foreign])
        XCTAssertEqual(create.status, 0, create.stderr)
        XCTAssertTrue(try Provenance.read(foreign).isEmpty)
        assertRefused(try runDeepDEM(["info", foreign]), "\(foreign): has no deepdem metadata (deepdem did not write it)")
    }

    /// Arguments with spaces or quotes come back as a line a shell runs as the same command.
    func testCommandIsShellQuoted() {
        let items = Provenance.command(version: "1", commit: "c", arguments: ["deepdem", "refine", "--out", "my dem's.tif", "--x=1"])
        XCTAssertEqual(items["DEEPDEM_COMMAND"], #"deepdem refine --out 'my dem'\''s.tif' --x=1"#)
    }
}
