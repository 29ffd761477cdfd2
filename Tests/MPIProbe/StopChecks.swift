import Distributed
import Foundation

/// A SIGUSR1 that reaches only the last rank stops every rank at the same step boundary.
func runStopChecks(_ p: inout Probe) throws {
    let comm = p.comm
    let stop = StopRequest.install()
    p.expect(!stop.isRequested, "no stop request before any signal")
    var stoppedAt = -1
    for step in 0..<10 {
        if comm.rank == comm.size - 1 && step == 4 { raise(SIGUSR1) }
        if try comm.anyRank(stop.isRequested) {
            stoppedAt = step
            break
        }
    }
    p.expect(stoppedAt == 4, "stopped at step \(stoppedAt), not 4")
    let mine = comm.rank == comm.size - 1 ? SIGUSR1 : nil
    p.expect(stop.signal == mine, "signal seen here: \(String(describing: stop.signal))")
}
