// Multi-rank checks of the Distributed module, run under a real `mpirun` by DistributedTests.
//
//   mpi-probe [checks]   every rank runs the checks and prints one line:
//                        "rank R/N ok checks=K" or "rank R/N FAIL: ..."; exit 1 on failure
//   mpi-probe abort      the last rank aborts with code 3 while the others wait in a barrier
import Distributed
import Foundation

let communicator: MPICommunicator
do {
    communicator = try MPICommunicator()
} catch {
    FileHandle.standardError.write(Data("mpi-probe: \(error)\n".utf8))
    exit(2)
}

switch CommandLine.arguments.dropFirst().first ?? "checks" {
case "checks":
    var probe = Probe(communicator)
    do {
        try runCollectiveChecks(&probe)
        try runReducerChecks(&probe)
        try runStopChecks(&probe)
    } catch {
        probe.failures.append("error: \(error)")
    }
    let head = "rank \(communicator.rank)/\(communicator.size)"
    let line = probe.failures.isEmpty ? "\(head) ok checks=\(probe.passed)"
                                      : "\(head) FAIL: \(probe.failures.prefix(5).joined(separator: "; "))"
    // One write with its newline: Hydra passes on what each rank writes as it comes, and a line
    // printed in pieces was seen interleaved with another rank's ("…checks=44rank 1/2 ok…").
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
    try? communicator.finalize()
    exit(probe.failures.isEmpty ? 0 : 1)
case "abort":
    _ = StopRequest.install()   // as in training: the handlers must not keep the job alive
    try communicator.barrier()
    if communicator.rank == communicator.size - 1 { communicator.abort(code: 3) }
    while true { try communicator.barrier() }
case let mode:
    FileHandle.standardError.write(Data("mpi-probe: unknown mode '\(mode)'\n".utf8))
    exit(2)
}

/// Counts passed expectations and keeps the failed ones' descriptions.
struct Probe {
    let comm: MPICommunicator
    var passed = 0
    var failures: [String] = []

    init(_ comm: MPICommunicator) { self.comm = comm }

    mutating func expect(_ ok: Bool, _ what: @autoclosure () -> String) {
        if ok { passed += 1 } else { failures.append(what()) }
    }
}
