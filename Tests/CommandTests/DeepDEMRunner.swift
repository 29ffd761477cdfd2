import Foundation
import NN
import XCTest

/// What one run of the built `deepdem` printed and returned.
struct DeepDEMOutput {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs the `deepdem` executable built next to the test bundle, through `launcher` (a program and
/// its arguments, e.g. taskset) when one is given, with `environment` added to this process's.
func runDeepDEM(_ arguments: [String], launcher: [String] = [], environment: [String: String] = [:]) throws -> DeepDEMOutput {
    let folder = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    let command = launcher + [folder.appendingPathComponent("deepdem").path] + arguments
    return try runProcess(command[0], Array(command.dropFirst()), environment: environment)
}

/// Runs a program found on PATH (or at an absolute path) and collects what it printed.
func runProcess(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws -> DeepDEMOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program.hasPrefix("/") ? program : "/usr/bin/env")
    process.arguments = program.hasPrefix("/") ? arguments : [program] + arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // stderr is drained on a thread so neither pipe can fill up and block the child.
    let errorText = LockedText()
    let drain = Thread { errorText.set(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)) }
    drain.start()
    let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    while !errorText.isSet { usleep(1000) }
    return DeepDEMOutput(status: process.terminationStatus, stdout: stdout, stderr: errorText.value)
}

final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var text: String?
    func set(_ value: String) { lock.lock(); text = value; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return text != nil }
    var value: String { lock.lock(); defer { lock.unlock() }; return text ?? "" }
}

/// Asserts a refused command: exit 1, nothing on stdout, one `deepdem: error:` line containing `phrase`.
func assertRefused(_ output: DeepDEMOutput, _ phrase: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(output.status, 1, output.stderr, file: file, line: line)
    let lines = output.stderr.split(separator: "\n").filter { !$0.hasSuffix("- done.") && !$0.contains("...") }
    XCTAssertEqual(lines.count, 1, output.stderr, file: file, line: line)
    XCTAssertTrue(lines.first?.hasPrefix("deepdem: error: ") ?? false, output.stderr, file: file, line: line)
    XCTAssertTrue(output.stderr.contains(phrase), "expected “\(phrase)” in: \(output.stderr)", file: file, line: line)
}

/// `train --print-config` with `arguments`, given back as the configuration file: it must print the
/// same. Returns the printed configuration.
@discardableResult
func printedConfigReadsBack(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
    let folder = try makeCommandFolder()
    defer { try? FileManager.default.removeItem(at: folder) }
    let first = try runDeepDEM(["train", "--print-config"] + arguments)
    XCTAssertEqual(first.status, 0, first.stderr, file: file, line: line)
    let config = folder.appendingPathComponent("config.json")
    try Data(first.stdout.utf8).write(to: config)
    let second = try runDeepDEM(["train", "--print-config", "--config", config.path])
    XCTAssertEqual(second.status, 0, second.stderr, file: file, line: line)
    XCTAssertEqual(second.stdout, first.stdout, file: file, line: line)
    return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any], file: file, line: line)
}

func makeCommandFolder(_ name: String = #function) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("deepdem-cmd-\(name.filter { $0.isLetter })-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A small unet checkpoint (chip 64) at `folder`/model.safetensors and a synthetic scene of
/// size² pixels at `folder`/scene.
func makeModelAndScene(in folder: String, size: Int, file: StaticString = #filePath, line: UInt = #line) throws {
    let bands = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"]
    let config = ModelConfig(arch: "unet", bands: bands, chipSize: 64, gsf: 1,
                             unet: UNetConfig(nInputChannels: bands.count, depth: 2, startKernel: 8, maxFilterDepth: 16))
    try Checkpoint.save(try makeNetwork(config, seed: 1), to: folder + "/model.safetensors")
    let synth = try runDeepDEM(["synth", "--out", folder + "/scene", "--size", "\(size)"])
    XCTAssertEqual(synth.status, 0, synth.stderr, file: file, line: line)
}

/// Rewrites a checkpoint's `deepdem` metadata with `change` applied, keeping its tensors, without
/// validating it: what a careless or hostile converter could produce.
func rewriteModelConfig(of path: String, _ change: (inout ModelConfig) -> Void) throws {
    let file = try SafeTensors(contentsOf: path)
    var config = try Checkpoint.readConfig(path)
    change(&config)
    var writer = SafeTensorsWriter(metadata: file.metadata)
    writer.metadata[Checkpoint.metadataKey] = try Checkpoint.configJSON(config)
    for t in file.tensors {
        if t.dtype == .i64 { writer.add(t.name, shape: t.shape, int64s: try file.int64s(t.name)) } else {
            writer.add(t.name, shape: t.shape, floats: try file.floats(t.name))
        }
    }
    try writer.write(to: path)
}

/// A checkpoint without tensors whose `deepdem` metadata is `config`, written without validating
/// it: what a careless or hostile converter could produce.
func writeBareCheckpoint(_ config: ModelConfig, to path: String) throws {
    try SafeTensorsWriter(metadata: [Checkpoint.metadataKey: try Checkpoint.configJSON(config)]).write(to: path)
}
