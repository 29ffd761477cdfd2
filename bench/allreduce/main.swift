// Gradient all-reduce benchmark: one blocking MPI_Allreduce of a model's whole gradient buffer
// against GradientReducer's buckets, on the real parameter layouts of the DeepDEM models.
// Run under mpirun (see run.sh); rank 0 prints one line per measurement, the slowest rank's time.
//
//   allreduce-bench [--arch unet,resnet18-unet] [--bucket-mb 25] [--iters 10]
//                   [--backward --chip 64 --batch 2]
//   allreduce-bench --floats 31000000,14000000    synthetic layouts of these sizes instead
//
// Without --backward the "backward" is instantaneous: the buckets start back to back, which
// measures what bucketing costs. With --backward a real forward/backward runs and the time left
// in finish() is the communication that backward could not hide.
import Distributed
import Foundation
import NN
import Primitives

struct Options {
    var archs = ["unet", "resnet18-unet"]
    var bucketMB = Double(GradientReducer.defaultBucketBytes >> 20)
    var iters = 10
    var backward = false
    var chip = 64
    var batch = 2
    var floats: [Int] = []

    init(_ args: [String]) {
        var i = 0
        func value() -> String {
            i += 1
            guard i < args.count else { fail("\(args[i - 1]) needs a value") }
            return args[i]
        }
        func number<T: LosslessStringConvertible>() -> T {
            let text = value()
            guard let v = T(text) else { fail("\(args[i - 1]): '\(text)' is not a number") }
            return v
        }
        while i < args.count {
            switch args[i] {
            case "--arch": archs = value().split(separator: ",").map(String.init)
            case "--bucket-mb": bucketMB = number()
            case "--iters": iters = number()
            case "--floats":
                let list = value().split(separator: ",")
                floats = list.compactMap { Int($0) }
                if floats.count != list.count { fail("--floats: not a list of integers") }
            case "--backward": backward = true
            case "--chip": chip = number()
            case "--batch": batch = number()
            default: fail("unknown option \(args[i])")
            }
            i += 1
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("allreduce-bench: \(message)\n".utf8))
    exit(2)
}

let bands = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"]

/// 64 tensors whose sizes grow geometrically, as a U-Net's convolutions do with depth.
func syntheticParameters(_ total: Int) -> ParameterSet {
    let weights = (0..<64).map { pow(1.1, Double($0)) }
    let sum = weights.reduce(0, +)
    var sizes = weights.map { max(1, Int(Double(total) * $0 / sum)) }
    sizes[63] += total - sizes.reduce(0, +)
    return ParameterSet(sizes.enumerated().map { ("t\($0.offset)", Parameter([$0.element])) })
}

func makeModel(_ arch: String, chip: Int) throws -> any Network {
    let unet = arch == "unet" ? UNetConfig(nInputChannels: bands.count) : nil
    let encoder = arch == "unet" ? nil : EncoderConfig(name: String(arch.dropLast("-unet".count)), inChannels: bands.count)
    return try makeNetwork(ModelConfig(arch: arch, bands: bands, chipSize: chip, gsf: 1, unet: unet, encoder: encoder))
}

/// Seconds of `body`, the slowest rank's: a collective is as slow as its last participant.
func timed(_ comm: Communicator, _ body: () throws -> Void) throws -> Double {
    try comm.barrier()
    let clock = ContinuousClock()
    let t0 = clock.now
    try body()
    let d = clock.now - t0
    let mine = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    return try comm.allGather([mine]).max()!
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

func ms(_ s: Double) -> String { String(format: "%8.2f ms", s * 1000) }

let options = Options(Array(CommandLine.arguments.dropFirst()))
let comm: Communicator
do { comm = try MPICommunicator() } catch { fail("\(error)") }
let say: (String) -> Void = { line in
    if comm.rank == 0 { print(line); fflush(nil) }
}

do {
    let bucketBytes = Int(options.bucketMB * Double(1 << 20))
    say("ranks \(comm.size), buckets of \(options.bucketMB) MB, \(options.iters) iterations, median of the slowest rank")
    let layouts: [(String, (any Network)?)] = options.floats.isEmpty
        ? try options.archs.map { ($0, try makeModel($0, chip: options.chip)) }
        : options.floats.map { _ in ("synthetic", nil) }
    for (k, (arch, net)) in layouts.enumerated() {
        let params = net?.parameters ?? syntheticParameters(options.floats[k])
        let megabytes = Double(params.count * 4) / 1e6
        let blocking = GradientReducer(parameters: params, communicator: comm, mode: .blocking)
        let bucketed = GradientReducer(parameters: params, communicator: comm, mode: .bucketed(bucketBytes: bucketBytes))
        say("\(arch): \(params.count) floats (\(String(format: "%.1f", megabytes)) MB), \(bucketed.buckets.count) buckets")

        if options.backward, let net {
            let x = Tensor([options.batch, bands.count, options.chip, options.chip])
            var rng = SplitMix64(seed: UInt64(comm.rank))
            for i in 0..<x.count { x[i] = rng.normal() }
            for (name, reducer) in [("blocking", blocking), ("bucketed", bucketed)] {
                net.gradientReady = { reducer.gradientReady($0) }
                var steps: [Double] = []
                for iter in 0...options.iters {
                    if iter == 1 { reducer.resetStats() }   // the first step warms up
                    let t = try timed(comm) {
                        let y = net.forward(x, training: true)
                        params.zeroGrad()
                        net.backward(y)
                        try reducer.finish()
                    }
                    if iter > 0 { steps.append(t) }
                }
                let s = reducer.stats
                say("  \(name) step:  \(ms(median(steps)))   in finish \(ms(s.secondsInFinish / Double(s.steps)))   during backward \(ms(s.secondsDuringBackward / Double(s.steps)))   early buckets \(s.bucketsStartedEarly)/\(s.bucketsStartedEarly + s.bucketsStartedInFinish)")
            }
        } else {
            var bare: [Double] = []
            var buckets: [Double] = []
            for iter in 0...options.iters {
                let tb = try timed(comm) { try comm.allReduceSum(params.gradBuffer) }
                let tr = try timed(comm) {
                    for i in params.parameters.indices.reversed() { bucketed.gradientReady(i) }
                    try bucketed.finish()
                }
                if iter > 0 { bare.append(tb); buckets.append(tr) }
            }
            say("  bare MPI_Allreduce: \(ms(median(bare)))  (\(String(format: "%.1f", megabytes / median(bare) / 1000)) GB/s)")
            say("  bucketed reducer:   \(ms(median(buckets)))")
        }
    }
    try comm.finalize()
} catch {
    FileHandle.standardError.write(Data("allreduce-bench: \(error)\n".utf8))
    comm.abort(code: 1)
}
