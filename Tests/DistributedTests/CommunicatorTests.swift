import Distributed
import Foundation
import NN
import XCTest

/// The communicator under a real launcher, Open MPI's mpirun or MPICH's Hydra (through the `mpi-probe` executable, which prints one
/// line per rank), and the single-process one in this process.
final class CommunicatorTests: XCTestCase {
    func testChecksPassOnTwoRanks() throws {
        try assertAllRanksPass(ranks: 2)
    }

    func testChecksPassOnThreeRanks() throws {
        try assertAllRanksPass(ranks: 3)
    }

    /// Without a launcher the process is an MPI singleton, rank 0 of 1.
    func testChecksPassWithoutMpirun() throws {
        let r = try ProbeRun.launch([try ProbeRun.probePath()], timeout: 60)
        XCTAssertEqual(r.status, 0, r.log)
        XCTAssertTrue(r.stdout.hasPrefix("rank 0/1 ok checks="), r.log)
    }

    /// One rank aborting while the others block in a collective (with the stop-signal handlers
    /// installed, as in training) must end the whole job, with its code.
    func testAbortingRankEndsTheJob() throws {
        let start = Date()
        let r = try ProbeRun.mpirun(ranks: 3, mode: "abort", timeout: 30)
        let seconds = Date().timeIntervalSince(start)
        XCTAssertFalse(r.timedOut, "the job outlived the aborting rank: \(r.log)")
        XCTAssertEqual(r.status, 3, r.log)
        XCTAssertLessThan(seconds, 10, r.log)
    }

    func testSingleProcessCommunicatorIsTheIdentity() throws {
        let comm = SingleProcessCommunicator()
        XCTAssertEqual(comm.rank, 0)
        XCTAssertEqual(comm.size, 1)
        var f: [Float] = [1.5, -2, 3]
        try f.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
        XCTAssertEqual(f, [1.5, -2, 3])
        var d: [Double] = [0.1, 7]
        try d.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
        try d.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
        XCTAssertEqual(d, [0.1, 7])
        XCTAssertEqual(try comm.allReduceMax(-4), -4)
        XCTAssertTrue(try comm.anyRank(true))
        XCTAssertFalse(try comm.anyRank(false))
        XCTAssertEqual(try comm.sumAcrossRanks([2, 0.5]), [2, 0.5])
        XCTAssertEqual(try comm.allGather([3, 4]), [3, 4])
        XCTAssertEqual(try comm.broadcast(Array("state".utf8), root: 0), Array("state".utf8))
        let pending = try f.withUnsafeMutableBufferPointer { try comm.startAllReduceSum($0) }
        XCTAssertTrue(try pending.test())
        try comm.barrier()
        try comm.finalize()
    }

    /// On one process the reducer's sum is the identity, whether or not every parameter reported ready.
    func testReducerOnOneProcessIsTheIdentity() throws {
        let params = ParameterSet([("a", Parameter([300])), ("b", Parameter([5])), ("c", Parameter([1000]))])
        for mode in [GradientReducer.Mode.bucketed(bucketBytes: 1024), .blocking] {
            let reducer = GradientReducer(parameters: params, communicator: SingleProcessCommunicator(), mode: mode)
            for i in 0..<params.count { params.grads[i] = Float(i) }
            reducer.gradientReady(2)
            reducer.gradientReady(0)
            try reducer.finish()
            XCTAssertEqual(Array(params.gradBuffer), (0..<params.count).map { Float($0) }, "\(mode)")
            XCTAssertEqual(reducer.stats.steps, 1)
            XCTAssertEqual(reducer.stats.bucketsStartedEarly + reducer.stats.bucketsStartedInFinish, reducer.buckets.count)
        }
        let bucketed = GradientReducer(parameters: params, communicator: SingleProcessCommunicator(),
                                       mode: .bucketed(bucketBytes: 1024))
        // Buffer order is c, b, a; c and a exceed the 256-float buckets, so each is one.
        XCTAssertEqual(bucketed.buckets, [0..<1000, 1000..<1005, 1005..<1305])
    }

    func testStopRequestRecordsTheSignal() {
        let stop = StopRequest.install()
        raise(SIGUSR1)
        XCTAssertTrue(stop.isRequested)
        XCTAssertEqual(stop.signal, SIGUSR1)
    }

    private func assertAllRanksPass(ranks: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try ProbeRun.mpirun(ranks: ranks, mode: "checks", timeout: 120)
        XCTAssertFalse(r.timedOut, "mpirun hung: \(r.log)", file: file, line: line)
        XCTAssertEqual(r.status, 0, r.log, file: file, line: line)
        let lines = r.stdout.split(separator: "\n").filter { $0.hasPrefix("rank ") }
        let passed = Set(lines.filter { $0.contains(" ok checks=") }.map { $0.split(separator: " ")[1] })
        XCTAssertEqual(passed, Set((0..<ranks).map { "\($0)/\(ranks)"[...] }), r.log, file: file, line: line)
        let counts = Set(lines.compactMap { $0.split(separator: "=").last.flatMap { Int($0) } })
        XCTAssertEqual(counts.count, 1, "ranks ran different numbers of checks: \(r.log)", file: file, line: line)
    }
}

/// Runs `mpi-probe` (built next to this test binary) and collects what it printed.
private enum ProbeRun {
    struct Result {
        var status: Int32
        var timedOut: Bool
        var stdout: String
        var stderr: String
        var log: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr.suffix(3000))" }
    }

    static func probePath() throws -> String {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let path = exe.deletingLastPathComponent().appendingPathComponent("mpi-probe").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw XCTSkip("mpi-probe is not built next to the tests (\(path))")
        }
        return path
    }

    static func mpirun(ranks: Int, mode: String, timeout: TimeInterval) throws -> Result {
        try launch(Launcher.command(ranks: ranks) + [try probePath(), mode], timeout: timeout)
    }

    /// Output goes to files, not pipes, so a chatty failure cannot block the job.
    static func launch(_ argv: [String], timeout: TimeInterval) throws -> Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpi-probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("stdout"), err = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = env
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        let timedOut = process.isRunning
        if timedOut {
            process.terminate()   // mpirun takes its ranks down with it
            process.waitUntilExit()
        }
        return Result(status: process.terminationStatus, timedOut: timedOut,
                      stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }
}
