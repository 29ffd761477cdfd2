import Distributed
import Foundation

/// Sums, maxima, gathers and broadcasts against closed forms. Values are small multiples of
/// powers of two, so every summation order gives the exact result and comparisons are bitwise.
func runCollectiveChecks(_ p: inout Probe) throws {
    let comm = p.comm
    let r = comm.rank
    let n = comm.size
    let triangle = Double(n * (n + 1) / 2)   // sum of (rank + 1) over ranks

    p.expect(try comm.allGather([Double(r)]) == (0..<n).map(Double.init), "allGather of ranks")

    // Sizes below and far above Open MPI's switch between reduction algorithms.
    for count in [1001, 300_001] {
        var f = (0..<count).map { i in Float(r + 1) * Float(i % 13) * 0.25 + 1 }
        try f.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
        let fBad = (0..<count).first { i in f[i] != Float(triangle) * Float(i % 13) * 0.25 + Float(n) }
        p.expect(fBad == nil, "Float allReduceSum (\(count)) wrong at \(fBad ?? -1)")

        var d = (0..<count).map { i in Double(r + 1) * Double(i % 17) / 1024 + 0.5 }
        try d.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
        let dBad = (0..<count).first { i in d[i] != triangle * Double(i % 17) / 1024 + 0.5 * Double(n) }
        p.expect(dBad == nil, "Double allReduceSum (\(count)) wrong at \(dBad ?? -1)")
    }

    p.expect(try comm.allReduceMax(Int32(3 * r - 1)) == Int32(3 * (n - 1) - 1), "allReduceMax")
    p.expect(try comm.anyRank(r == n - 1), "anyRank when only the last rank says yes")
    p.expect(try !comm.anyRank(false), "anyRank when no rank says yes")

    // sumAcrossRanks adds in rank order: every rank can recompute the exact bits.
    let local = [Double(r), 0.1 * Double(r + 1), 1]
    var expected = [0.0, 0.0, 0.0]
    for q in 0..<n { expected[0] += Double(q); expected[1] += 0.1 * Double(q + 1); expected[2] += 1 }
    p.expect(try comm.sumAcrossRanks(local) == expected, "sumAcrossRanks")

    for root in n > 1 ? [0, n - 1] : [0] {
        var f = (0..<257).map { i in r == root ? Float(i) * 1.5 : -1 }
        try f.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
        p.expect(f == (0..<257).map { Float($0) * 1.5 }, "Float broadcast from \(root)")

        var d = (0..<33).map { i in r == root ? Double(i) / 3 : .nan }
        try d.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
        p.expect(d == (0..<33).map { Double($0) / 3 }, "Double broadcast from \(root)")

        var raw = (0..<100).map { i in r == root ? UInt8(i) : 0 }
        try raw.withUnsafeMutableBytes { try comm.broadcast($0, root: root) }
        p.expect(raw == (0..<100).map { UInt8($0) }, "byte broadcast from \(root)")

        let message = Array("resume state of rank \(root)".utf8)
        let got = try comm.broadcast(r == root ? message : [1, 2], root: root)
        p.expect(got == message, "byte-string broadcast from \(root)")

        // The validity tables' way: a count the other ranks do not know, values wider than bytes.
        let table = (0..<1001).map { Int64($0) << 33 | Int64(root) }
        let gotTable = try comm.broadcast(r == root ? table : [], root: root)
        p.expect(gotTable == table, "Int64 array broadcast from \(root)")
    }
    try comm.barrier()
}
