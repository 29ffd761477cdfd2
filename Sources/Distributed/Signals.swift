import Foundation
import Synchronization

/// A request to stop at the next step boundary, made by SIGTERM, SIGINT or SIGUSR1 (Slurm's
/// warning before the time limit; `mpirun` forwards SIGUSR1 to every rank, while its own
/// SIGINT/SIGTERM kills the job after a second).
///
/// The handlers only record the signal. A signal may reach one rank only, so the training loop
/// asks `communicator.anyRank(stop.isRequested)` once per step and all ranks stop together,
/// then write their last checkpoint. A second SIGINT kills at once (the impatient Ctrl-C).
@available(macOS 15, *)
public struct StopRequest: Sendable {
    /// Installs the handlers (again, if called again) and returns the process's stop request.
    public static func install() -> StopRequest {
        installStopHandlers()
        return StopRequest()
    }

    /// The first stop signal received, if any.
    public var signal: Int32? {
        let s = SignalRecord.received.load(ordering: .relaxed)
        return s == 0 ? nil : s
    }

    public var isRequested: Bool { signal != nil }
}

@available(macOS 15, *)
private enum SignalRecord {
    static let received = Atomic<Int32>(0)
}

@available(macOS 15, *)
private func installStopHandlers() {
    _ = SignalRecord.received.load(ordering: .relaxed)   // initialized here, not in a handler
    for s in [SIGTERM, SIGINT, SIGUSR1] { _ = signal(s, recordStopSignal) }
}

/// Async-signal-safe: a lock-free atomic store and `signal`.
@available(macOS 15, *)
private func recordStopSignal(_ s: Int32) {
    _ = SignalRecord.received.compareExchange(expected: 0, desired: s, ordering: .relaxed)
    if s == SIGINT { _ = signal(SIGINT, SIG_DFL) }
}
