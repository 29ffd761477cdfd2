import Data
import Foundation
import NN
import XCTest

/// `deepdem refine`: its default threads, bad arguments, inputs and weights that cannot give
/// heights, and an output that cannot be written whole (a full disk, a signal).
final class RefineCommandTests: XCTestCase {
    /// A disk that fills up halfway through the output (a 300 KB tmpfs for a ~1 MB GeoTIFF): one
    /// error line naming the output, exit 1, and no file left behind, neither the output nor its
    /// temporary, with GDAL compressing on several threads. Needs root's `mount`; skipped without.
    func testFullDiskLeavesNothingBehind() throws {
        let folder = NSTemporaryDirectory() + "refine-full-\(getpid())"
        let full = folder + "/full"
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        guard shell("mount -t tmpfs -o size=300k tmpfs \(full)") == 0 else { throw XCTSkip("cannot mount a tmpfs here") }
        defer { _ = shell("umount \(full)") }

        try makeModelAndScene(in: folder, size: 512)

        let out = full + "/refined.tif"
        let refine = try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                                     "--out", out, "--threads", "2"])
        XCTAssertEqual(refine.status, 1, refine.stderr)
        let lines = refine.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem:") }
        XCTAssertEqual(lines.count, 1, refine.stderr)
        XCTAssertTrue(lines.first?.contains("\(out): write failed") ?? false, refine.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: full), [], "left behind after the failure")
    }

    /// `--threads 0` used to run on one thread without a word; it is refused before any work.
    func testThreadsBelowOneAreRefused() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("refined.tif").path
        assertRefused(try runDeepDEM(["refine", "--checkpoint", folder.appendingPathComponent("none.safetensors").path,
                                      "--data", folder.path, "--out", out, "--threads", "0"]), "--threads 0: needs at least 1 thread")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// A checkpoint whose bands do not match its network's input channels crashed refine; it is
    /// refused with one line naming the checkpoint, before the scene is read.
    func testCheckpointThatCannotBeBuiltIsRefused() throws {
        let folder = try makeCommandFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let checkpoint = folder.appendingPathComponent("model.safetensors").path
        try writeBareCheckpoint(ModelConfig(arch: "unet", bands: ["asp_dsm", "ndvi"], chipSize: 64, gsf: 1,
                                            unet: UNetConfig(nInputChannels: 6, depth: 2, startKernel: 8)), to: checkpoint)
        let out = folder.appendingPathComponent("refined.tif").path
        assertRefused(try runDeepDEM(["refine", "--checkpoint", checkpoint, "--data", folder.path, "--out", out]),
                      "\(checkpoint): 'deepdem' metadata: 'unet.n_input_channels' is 6, but 'bands' lists 2")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// Without --threads, refine takes the cores it may run on (one, by taskset here, as a Slurm
    /// allocation or mpirun's binding would restrict it), not every core of the machine.
    func testDefaultThreadsFollowTheAffinity() throws {
        let taskset = "/usr/bin/taskset"
        guard FileManager.default.isExecutableFile(atPath: taskset) else { throw XCTSkip("no taskset") }
        guard ProcessInfo.processInfo.activeProcessorCount > 1 else { throw XCTSkip("one core: nothing to tell apart") }
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try makeModelAndScene(in: folder, size: 128)
        let refine = try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                                     "--out", folder + "/refined.tif"], launcher: [taskset, "-c", "0"])
        XCTAssertEqual(refine.status, 0, refine.stderr)
        XCTAssertTrue(refine.stdout.contains("× 1)"), "expected one thread: \(refine.stdout)")
    }

    /// `--json` is one line a script can parse (bench/run.sh does), in place of the sentence.
    func testJSONReport() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try makeModelAndScene(in: folder, size: 64)
        let out = folder + "/refined.tif"
        let refine = try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                                     "--out", out, "--threads", "2", "--json"])
        XCTAssertEqual(refine.status, 0, refine.stderr)
        let lines = refine.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, refine.stdout)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        XCTAssertEqual(report["width"] as? Int, 64)
        XCTAssertEqual(report["height"] as? Int, 64)
        XCTAssertEqual(report["threads"] as? Int, 2)
        XCTAssertEqual(report["output"] as? String, out)
        XCTAssertFalse((report["kernel"] as? String ?? "").isEmpty, refine.stdout)
        XCTAssertEqual(report["precision"] as? String, "fp32")
        XCTAssertGreaterThan(try XCTUnwrap(report["mpx_per_s"] as? Double), 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
    }

    /// `--precision bf16-mixed` refines close to fp32, and to the same bytes at 1 and 2 threads.
    func testBF16Refinement() throws {
        try XCTSkipUnless(Precision.bf16Mixed.isAvailable, "this CPU has no AVX512_BF16")
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try makeModelAndScene(in: folder, size: 128)
        func refine(_ precision: String, threads: Int) throws -> [Float] {
            let out = folder + "/\(precision)_\(threads).tif"
            let r = try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                                    "--out", out, "--threads", "\(threads)", "--precision", precision])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try Raster(path: out).readAll()
        }
        let fp32 = try refine("fp32", threads: 2), one = try refine("bf16-mixed", threads: 1), two = try refine("bf16-mixed", threads: 2)
        XCTAssertTrue(one.map(\.bitPattern) == two.map(\.bitPattern), "bf16 refinement differs between 1 and 2 threads")
        let valid = zip(fp32, two).filter { $0.0.isFinite && $0.1.isFinite }
        XCTAssertGreaterThan(valid.count, fp32.count / 2)
        let mae = valid.map { Double(abs($0 - $1)) }.reduce(0, +) / Double(valid.count)
        XCTAssertGreaterThan(mae, 0, "bf16 gave fp32's heights exactly")
        XCTAssertLessThan(mae, 0.05, "bf16 refinement is \(mae) m from fp32 on average")
    }

    /// Where the CPU lacks AVX512_BF16, `--precision bf16-mixed` is fp32 (the same bytes), with
    /// one line saying so and the JSON report naming what ran; never an illegal instruction.
    func testBF16FallsBackToFP32WithANote() throws {
        try XCTSkipIf(Precision.bf16Mixed.isAvailable, "this CPU has AVX512_BF16: bf16-mixed runs, there is no fallback to see")
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try makeModelAndScene(in: folder, size: 96)
        func refine(_ precision: String) throws -> DeepDEMOutput {
            let r = try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                                    "--out", folder + "/\(precision).tif", "--precision", precision, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return r
        }
        let fp32 = try refine("fp32"), asked = try refine("bf16-mixed")
        XCTAssertEqual(asked.stderr.components(separatedBy: "\n").filter { $0.contains("AVX512_BF16") },
                       ["precision bf16-mixed: this CPU has no AVX512_BF16; computing in fp32"], asked.stderr)
        XCTAssertFalse(fp32.stderr.contains("AVX512_BF16"), fp32.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(asked.stdout.utf8)) as? [String: Any], asked.stdout)
        XCTAssertEqual(report["precision"] as? String, "fp32")
        // The pixels' bits: the files differ in DEEPDEM_COMMAND, which names --precision and --out.
        XCTAssertEqual(try Raster(path: folder + "/bf16-mixed.tif").readAll().map(\.bitPattern),
                       try Raster(path: folder + "/fp32.tif").readAll().map(\.bitPattern), "the fallback refined other heights than fp32")
    }

    /// `DEEPDEM_CONV=reference` refines by the convolutions' definition: the same heights as the
    /// fast routes to float rounding, and a notice saying so; an unknown choice is one error line.
    func testReferenceConvolutionsRefineTheSame() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try makeModelAndScene(in: folder, size: 96)
        func refine(_ conv: String, _ name: String) throws -> DeepDEMOutput {
            try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                            "--out", folder + "/" + name], environment: ["DEEPDEM_CONV": conv])
        }
        let fast = try refine("automatic", "fast.tif"), reference = try refine("reference", "reference.tif")
        XCTAssertEqual(fast.status, 0, fast.stderr)
        XCTAssertEqual(reference.status, 0, reference.stderr)
        XCTAssertFalse(fast.stderr.contains("DEEPDEM_CONV"), fast.stderr)
        XCTAssertTrue(reference.stderr.contains("convolutions by their definition (DEEPDEM_CONV=reference)"), reference.stderr)
        let a = try Raster(path: folder + "/fast.tif").readAll(), b = try Raster(path: folder + "/reference.tif").readAll()
        XCTAssertEqual(a.count, 96 * 96)
        let worst = zip(a, b).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-3, "fast and reference refinements differ by \(worst) m")

        assertRefused(try refine("fastest", "none.tif"), "DEEPDEM_CONV=fastest: must be one of automatic, reference")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/none.tif"))
    }

    /// A DSM without one valid pixel used to give exit 0 and an all-nodata file.
    func testDSMWithoutValidPixelsIsRefused() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try makeModelAndScene(in: folder, size: 128)
        let dsm = folder + "/scene/final_asp_dsm.tif"
        let raster = try Raster(path: dsm)
        let nodata = raster.nodata!
        try RasterWriter.write([Float](repeating: Float(nodata), count: raster.grid.pixelCount), grid: raster.grid,
                               nodata: nodata, to: dsm, overwrite: true)
        let out = folder + "/refined.tif"
        assertRefused(try runDeepDEM(["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene", "--out", out]),
                      "\(dsm): has no valid pixel")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), ["model.safetensors", "scene"])
    }

    /// One NaN or infinite weight, refused on loading by refine and info alike.
    func testNonFiniteWeightsAreRefused() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try makeModelAndScene(in: folder, size: 128)
        let model = folder + "/model.safetensors"
        for (value, name) in [(Float.nan, "nan"), (Float.infinity, "inf")] {
            let network = try makeNetwork(try Checkpoint.readConfig(model), seed: 1)
            network.parameters.parameters[3].value.data[2] = value
            let bad = folder + "/\(name).safetensors"
            try Checkpoint.save(network, to: bad)
            let out = folder + "/refined.tif"
            assertRefused(try runDeepDEM(["refine", "--checkpoint", bad, "--data", folder + "/scene", "--out", out]),
                          "holds 1 NaN or infinite value")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
            assertRefused(try runDeepDEM(["info", bad]), "\(bad): tensor ")
        }
    }

    /// A gsf that makes every height NaN (0) or infinite (1e308 does not fit a Float) used to give
    /// exit 0 and a file of nodata or ±inf; now one line naming the checkpoint and nothing written.
    func testGSFThatCannotGiveHeightsIsRefused() throws {
        for gsf in [0, 1e308] {
            let folder = try makeCommandFolder().path
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try makeModelAndScene(in: folder, size: 128)
            let model = folder + "/model.safetensors"
            try rewriteModelConfig(of: model) { $0.gsf = gsf }
            let refine = try runDeepDEM(["refine", "--checkpoint", model, "--data", folder + "/scene", "--out", folder + "/refined.tif"])
            XCTAssertEqual(refine.status, 1, "gsf \(gsf): \(refine.stderr)")
            let lines = refine.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem: error: ") }
            XCTAssertEqual(lines.count, 1, refine.stderr)
            XCTAssertTrue(lines.first?.contains(model) ?? false, refine.stderr)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), ["model.safetensors", "scene"],
                           "gsf \(gsf): a file was left")
        }
    }

    /// SIGTERM or SIGINT while the output is being written: the hidden partial file goes with
    /// the process, which ends by that signal.
    func testSignalRemovesThePartialOutput() throws {
        let folder = try makeCommandFolder().path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try makeModelAndScene(in: folder, size: 1536)
        for signal in [SIGTERM, SIGINT] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
                .deletingLastPathComponent().appendingPathComponent("deepdem")
            process.arguments = ["refine", "--checkpoint", folder + "/model.safetensors", "--data", folder + "/scene",
                                 "--out", folder + "/refined.tif", "--threads", "1", "--overwrite"]
            process.standardError = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(60)
            var partial: String?
            while partial == nil, process.isRunning, Date() < deadline {
                partial = try FileManager.default.contentsOfDirectory(atPath: folder).first { $0.contains(".partial-") }
                usleep(10_000)
            }
            XCTAssertNotNil(partial, "no partial file seen while refining")
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .uncaughtSignal)
            XCTAssertEqual(process.terminationStatus, signal)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), ["model.safetensors", "scene"],
                           "left behind after signal \(signal)")
        }
    }

    private func shell(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command + " 2>/dev/null"]
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
