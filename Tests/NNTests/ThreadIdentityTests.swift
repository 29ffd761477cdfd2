import Foundation
import NN
import XCTest

/// The same bits at any thread count, under each OpenBLAS kernel family this CPU can run.
/// OpenBLAS picks its kernels once, when it loads, so each kernel gets processes of its own:
/// `thread-identity` (every layer route, the optimizer and a training step of both models at 1, 2,
/// 3 and 32 threads) and `deepdem refine` of a small scene at those thread counts. Across kernels
/// the bits may differ; the same training step agrees to 1e-5 of its scale.
final class ThreadIdentityTests: XCTestCase {
    /// OPENBLAS_CORETYPE names and the CPU flags (/proc/cpuinfo) their kernels need.
    /// Sandybridge's are AVX without FMA, so a CPU without AVX-512 still runs two families.
    static let kernels: [(name: String, flags: [String])] = [
        ("Haswell", ["avx2", "fma"]),
        ("Sandybridge", ["avx"]),
        ("SkylakeX", ["avx512f", "avx512bw", "avx512dq", "avx512vl"]),
        ("Cooperlake", ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"]),
    ]

    /// The kernels this CPU can run; the others are skipped with a printed reason.
    static var runnableKernels: [String] {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let flags = Set(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
        return kernels.compactMap { kernel in
            let missing = kernel.flags.filter { !flags.contains($0) }
            if missing.isEmpty { return kernel.name }
            print("ThreadIdentityTests: skipping OpenBLAS's \(kernel.name) kernels: this CPU lacks \(missing.joined(separator: ", "))")
            return nil
        }
    }

    func testLayersAndTrainingStepsUnderEveryKernel() throws {
        let kernels = Self.runnableKernels
        guard !kernels.isEmpty else { throw XCTSkip("this CPU runs none of the kernels tested") }
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        for kernel in kernels {
            let dump = folder.appendingPathComponent(kernel)
            try FileManager.default.createDirectory(at: dump, withIntermediateDirectories: true)
            let run = try launch("thread-identity", ["--dump", dump.path], kernel: kernel)
            XCTAssertEqual(run.status, 0, "under \(kernel):\n\(run.output)")
            XCTAssertTrue(run.output.contains("kernel \(kernel):"), "OpenBLAS did not take \(kernel):\n\(run.output)")
        }
        // The kernels round differently; the same step stays within 1e-5 of its scale.
        for arch in ["unet", "resnet18-unet"] {
            let steps = try kernels.map { kernel in
                try Data(contentsOf: folder.appendingPathComponent(kernel).appendingPathComponent("\(arch).f32")).withUnsafeBytes {
                    Array($0.bindMemory(to: Float.self))
                }
            }
            for (kernel, step) in zip(kernels, steps).dropFirst() {
                XCTAssertEqual(step.count, steps[0].count)
                XCTAssertEqual(step[0], steps[0][0], accuracy: 1e-5 * abs(steps[0][0]), "\(arch) loss, \(kernel) against \(kernels[0])")
                let scale = steps[0].dropFirst().map(abs).max()!
                let worst = zip(step.dropFirst(), steps[0].dropFirst()).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(worst, 1e-5 * scale, "\(arch) gradients, \(kernel) against \(kernels[0])")
            }
        }
    }

    /// A whole refinement (tiles, blending, GeoTIFF pixels) is bit-identical at 1, 2, 3 and 32 threads
    /// under each kernel, with a unet (BatchNorm folded, Winograd F(4×4), im2col, the direct last
    /// layer, transposed convolutions) and a resnet18-unet.
    func testRefinementUnderEveryKernel() throws {
        let kernels = Self.runnableKernels
        guard !kernels.isEmpty else { throw XCTSkip("this CPU runs none of the kernels tested") }
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let scene = folder.appendingPathComponent("scene").path
        let synth = try launch("deepdem", ["synth", "--out", scene, "--size", "192"], kernel: kernels[0])
        XCTAssertEqual(synth.status, 0, synth.output)
        let bands = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"]
        let models = [
            ModelConfig(arch: "unet", bands: bands, chipSize: 64, gsf: 3,
                        unet: UNetConfig(nInputChannels: 6, depth: 3, startKernel: 16, maxFilterDepth: 64, doBN: true)),
            ModelConfig(arch: "resnet18-unet", bands: bands, chipSize: 64, gsf: 3, encoder: EncoderConfig(name: "resnet18", inChannels: 6)),
        ]
        for config in models {
            let checkpoint = folder.appendingPathComponent("\(config.arch).safetensors").path
            try Checkpoint.save(try makeNetwork(config, seed: 2), to: checkpoint)
            for kernel in kernels {
                var outputs: [Data] = []
                for threads in [1, 2, 3, 32] {
                    let out = folder.appendingPathComponent("\(config.arch)-\(kernel)-\(threads).tif").path
                    let run = try launch("deepdem", ["refine", "--checkpoint", checkpoint, "--data", scene, "--out", out,
                                                     "--threads", "\(threads)"], kernel: kernel)
                    XCTAssertEqual(run.status, 0, run.output)
                    // The pixels as GDAL decodes them: the files themselves differ in DEEPDEM_COMMAND,
                    // which names --threads and --out.
                    let pixels = out + ".bin"
                    XCTAssertEqual(try launch("/usr/bin/gdal_translate", ["-q", "-of", "ENVI", out, pixels], kernel: kernel).status, 0)
                    outputs.append(try Data(contentsOf: URL(fileURLWithPath: pixels)))
                }
                for (threads, output) in zip([2, 3, 32], outputs.dropFirst()) {
                    XCTAssertTrue(output == outputs[0], "\(config.arch) under \(kernel): \(threads) threads refine other pixels than 1")
                }
            }
        }
    }

    private func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("thread-identity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs an executable built next to the tests with OpenBLAS forced to `kernel`, whatever the
    /// machine's environment says; stdout and stderr together.
    /// A program built next to the tests, or at an absolute path.
    private func launch(_ name: String, _ arguments: [String], kernel: String) throws -> (status: Int32, output: String) {
        let path = name.hasPrefix("/") ? name : URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw XCTSkip("\(name) is not built next to the tests (\(path))") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = kernel
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}
