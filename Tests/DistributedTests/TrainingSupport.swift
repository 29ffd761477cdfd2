import Data
import Distributed
import Foundation
import NN
import XCTest

/// The launcher of the MPI this build is for (`make test` runs the multi-rank tests once per
/// MPI, each from its own build): Open MPI's mpirun, or MPICH's Hydra. Taken from the binary,
/// not from a setting, so the tests cannot start a build under the wrong one by mistake.
enum Launcher {
    static let isMPICH = MPILibrary.builtFor.hasPrefix("MPICH")

    /// The argv before the program that starts `ranks` copies of it under this build's MPI's
    /// launcher (or, with `mpich`, the other's); `openMPIOptions` are mpirun's own.
    static func command(ranks: Int, openMPIOptions: [String] = [], mpich: Bool = isMPICH) -> [String] {
        if mpich {
            precondition(openMPIOptions.isEmpty, "Hydra has no \(openMPIOptions)")
            return ["/usr/bin/mpiexec.mpich", "-n", "\(ranks)"]
        }
        return ["/usr/bin/mpirun"] + openMPIOptions + ["--oversubscribe", "-np", "\(ranks)"]
    }

    /// The deepdem processes a launcher started: its children under mpirun, its grandchildren
    /// under Hydra (mpiexec → hydra_pmi_proxy → ranks); ordered by PID.
    static func ranks(of launcher: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var parent: [Int32: Int32] = [:], deepdem: [Int32] = []
        for pid in entries.compactMap(Int32.init) {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { continue }
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            guard fields.count > 2, let ppid = Int32(fields[1]) else { continue }
            parent[pid] = ppid
            if stat.contains("(deepdem)") { deepdem.append(pid) }
        }
        func descends(_ pid: Int32) -> Bool {
            var p = pid
            while let up = parent[p], up > 1 { if up == launcher { return true }; p = up }
            return false
        }
        return deepdem.filter(descends).sorted()
    }
}

/// Runs the built `deepdem` (directly or under real `mpirun`) on small synthetic scenes.
enum TrainingRun {
    /// The folder of the test binary, where SwiftPM also puts `deepdem`.
    static let binFolder = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    static var deepdem: String { binFolder.appendingPathComponent("deepdem").path }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var seconds: Double
    }

    static func environment() -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        env["SWIFT_BACKTRACE"] = "enable=no"
        return env
    }

    /// `deepdem args…`, under the launcher with `ranks` ranks when ranks > 0.
    static func start(_ args: [String], ranks: Int = 0, openMPIOptions: [String] = []) throws -> (Process, Pipe, Pipe) {
        try start(ranks > 0 ? Launcher.command(ranks: ranks, openMPIOptions: openMPIOptions) : [], args)
    }

    /// `deepdem args…` after the argv of a launcher (none: deepdem alone).
    static func start(_ launcher: [String], _ args: [String]) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        if let first = launcher.first {
            p.executableURL = URL(fileURLWithPath: first)
            p.arguments = launcher.dropFirst() + [deepdem] + args
        } else {
            p.executableURL = URL(fileURLWithPath: deepdem)
            p.arguments = args
        }
        p.environment = environment()
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    static func run(_ args: [String], ranks: Int = 0, openMPIOptions: [String] = []) throws -> Result {
        try run(ranks > 0 ? Launcher.command(ranks: ranks, openMPIOptions: openMPIOptions) : [], args)
    }

    static func run(_ launcher: [String], _ args: [String]) throws -> Result {
        let t0 = Date()
        let (p, out, err) = try start(launcher, args)
        // Read both pipes to the end before waiting, so a chatty child never blocks on a full pipe.
        let group = DispatchGroup()
        nonisolated(unsafe) var o = Data(), e = Data()
        group.enter()
        DispatchQueue.global().async { o = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        e = err.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                      stderr: String(decoding: e, as: UTF8.self), seconds: Date().timeIntervalSince(t0))
    }

    /// A fresh temporary folder.
    static func folder(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "deepdem-tests/\(name)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A synthetic scene, made once per process and size.
    nonisolated(unsafe) static var scenes: [Int: String] = [:]
    static func scene(size: Int = 160) throws -> String {
        if let s = scenes[size] { return s }
        let path = folder("scene") + "/scene"
        try SyntheticScene(width: size, height: size, seed: 1).write(to: path)
        scenes[size] = path
        return path
    }

    /// A small, fast configuration: a 3-level U-Net on 32 px chips.
    static func config(scene: String, out: String, _ extra: [String: Any] = [:]) throws -> String {
        var c: [String: Any] = [
            "data": scene, "out": out, "arch": "unet",
            "bands": ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi"],
            "unet": ["depth": 3, "start_kernel": 8, "max_filter_depth": 32],
            "chip_size": 32, "gsf": 5.0, "batch_size": 6, "lr": 1e-3,
            "samples_per_epoch": 24, "val_samples": 12, "max_epochs": 100, "max_steps": 6,
            "checkpoint_every": 100, "log_every": 1, "seed": 3,
        ]
        c.merge(extra) { $1 }
        let path = out + ".json"
        try JSONSerialization.data(withJSONObject: c, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Every parameter and buffer of a checkpoint, by name.
    static func weights(_ path: String) throws -> [String: [Float]] {
        let config = try Checkpoint.readConfig(path)
        let net = try makeNetwork(config)
        try Checkpoint.load(path, into: net)
        var out: [String: [Float]] = [:]
        for (name, entry) in net.state() {
            switch entry {
            case .parameter(let p): out[name] = p.value.array
            case .buffer(let t): out[name] = t.array
            case .counter(let c): out[name] = [Float(c.value)]
            }
        }
        return out
    }
}

/// Runs `deepdem train` once per case (extra config keys, the message, the ranks) and asserts each is
/// refused before any training: a non-zero exit (exactly `status` when given) and one
/// `deepdem: error:` line that contains the message.
func assertRefusedBeforeTraining(scene: String, out: String, _ cases: [([String: Any], String, Int)], status: Int32? = nil,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
    for (extra, message, ranks) in cases {
        let r = try TrainingRun.run(["train", "--config", TrainingRun.config(scene: scene, out: out, extra)], ranks: ranks)
        XCTAssertNotEqual(r.status, 0, "\(extra)", file: file, line: line)
        if let status { XCTAssertEqual(r.status, status, "\(extra): \(r.stdout)\n\(r.stderr)", file: file, line: line) }
        let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("deepdem: error:") }
        XCTAssertEqual(lines.count, 1, "\(extra): \(r.stderr)", file: file, line: line)
        XCTAssertTrue(lines.first?.contains(message) ?? false, "\(extra): \(r.stderr)", file: file, line: line)
        XCTAssertFalse(r.stdout.contains("step 1/"), "\(extra): trained anyway", file: file, line: line)
    }
}

/// Asserts that checkpoints' weights agree: the largest |a − b| relative to the largest |b| of each tensor.
func assertClose(_ a: [String: [Float]], _ b: [String: [Float]], tolerance: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(Set(a.keys), Set(b.keys), what, file: file, line: line)
    var worst: Float = 0, at = ""
    for (name, x) in a {
        guard let y = b[name] else { continue }
        let scale = max(y.map(abs).max() ?? 0, 1e-12)
        let d = zip(x, y).map { abs($0 - $1) }.max() ?? 0
        if d / scale > worst { worst = d / scale; at = name }
    }
    XCTAssertLessThanOrEqual(worst, tolerance, "\(what): worst relative difference \(worst) in \(at)", file: file, line: line)
}
