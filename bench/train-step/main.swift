// Training-step throughput (forward, masked-L1 backward, Adam) of the architectures at the
// performance issue's sizes, with the achieved GFLOPS against the sgemm peak of the same cores.
//
//   train-bench [--arch unet,resnet18-unet] [--threads 1,2] [--steps N] [--warmup N] [--batch 4] [--accumulate K]
//               [--bucket-mb 25] [--precision fp32|bf16-mixed] [--json]
//
// Under mpirun the global batch is split over the ranks and gradients are all-reduced in buckets
// while backward runs, as in `deepdem train`; the output then adds the all-reduce time that
// backward did not hide (left in finish) against a bare MPI_Allreduce of the same bytes.
// Peak RSS is the process's (summed over ranks), so run one architecture per process to read it.
// With --accumulate K, a step is K micro-batches of batch/K tiles as `deepdem train` runs
// accumulate_grad_batches: the whole step's inputs are held, gradients sum over the micro-batches
// and the all-reduce runs during the last one's backward.
import CBLAS
import Distributed
import Foundation
import NN
import Primitives

struct Case {
    let config: ModelConfig
    let chip: Int
    /// Forward+backward FLOPs of one tile (the performance issue's figures).
    let gflopPerTile: Double
}

let cases = [
    Case(config: ModelConfig(arch: "unet", bands: ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask"],
                             chipSize: 128, gsf: 20,
                             unet: UNetConfig(nInputChannels: 5, depth: 5, startKernel: 64, maxFilterDepth: 512, doBN: false)),
         chip: 128, gflopPerTile: 14.9),
    Case(config: ModelConfig(arch: "resnet18-unet", bands: ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask",
                                                            "triangulation_error"],
                             chipSize: 256, gsf: 35, encoder: EncoderConfig(name: "resnet18", inChannels: 6)),
         chip: 256, gflopPerTile: 32.7),
    // 47.2 GFLOP: torch.utils.flop_counter on smp's Unet, forward and backward (as for the others).
    Case(config: ModelConfig(arch: "resnet34-unet", bands: ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask",
                                                            "triangulation_error"],
                             chipSize: 256, gsf: 35, encoder: EncoderConfig(name: "resnet34", inChannels: 6)),
         chip: 256, gflopPerTile: 47.2),
    Case(config: ModelConfig(arch: "resnet50-unet", bands: ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask",
                                                            "triangulation_error"],
                             chipSize: 256, gsf: 35, encoder: EncoderConfig(name: "resnet50", inChannels: 6)),
         chip: 256, gflopPerTile: 64.1),
]

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("train-bench: \(message)\n".utf8))
    exit(2)
}

var archs = cases.map(\.config.arch)
var threadCounts = [1, 2]
var steps = 5, warmup = 1, batch = 4, accumulate = 1
var json = false
var precision = Precision.fp32
var bucketMB = Double(GradientReducer.defaultBucketBytes) / 1048576
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    func int() -> Int {
        guard let v = args.popFirst().flatMap({ Int($0) }), v > 0 else { fail("\(a) needs a positive integer") }
        return v
    }
    switch a {
    case "--arch": archs = (args.popFirst() ?? "").split(separator: ",").map(String.init)
    case "--threads": threadCounts = (args.popFirst() ?? "").split(separator: ",").compactMap { Int($0) }
    case "--steps": steps = int()
    case "--warmup": warmup = int()
    case "--batch": batch = int()
    case "--accumulate": accumulate = int()
    case "--bucket-mb":
        guard let v = args.popFirst().flatMap({ Double($0) }), v > 0 else { fail("--bucket-mb needs a positive number") }
        bucketMB = v
    case "--json": json = true
    case "--precision":
        guard let p = args.popFirst().flatMap(Precision.init(rawValue:)) else { fail("--precision must be fp32 or bf16-mixed") }
        guard p.isAvailable else { fail("--precision \(p.rawValue): this CPU lacks AVX512_BF16") }
        precision = p
    default: fail("usage: train-bench [--arch unet,resnet18-unet] [--threads 1,2] [--steps N] [--warmup N] [--batch N] [--accumulate K] [--bucket-mb MB] [--precision fp32|bf16-mixed] [--json]")
    }
}
if let unknown = archs.first(where: { a in !cases.contains { $0.config.arch == a } }) { fail("unknown --arch \(unknown)") }

/// CPU seconds of the whole process (all threads): on a machine shared with other jobs this,
/// unlike the wall clock, compares two builds run one after the other.
func cpuSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func peakRSSMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

/// Wall seconds of `body` on the slowest rank (every rank starts together).
func timed(_ comm: Communicator, _ body: () throws -> Void) throws -> Double {
    try comm.barrier()
    let t0 = Date()
    try body()
    return try comm.allGather([Date().timeIntervalSince(t0)]).max()!
}

func sgemmGFLOPS(_ n: Int) -> Double {
    let a = [Float](repeating: 1, count: n * n), b = a
    var c = [Float](repeating: 0, count: n * n)
    var best = Double.infinity
    for _ in 0..<6 {
        let t0 = Date()
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n), 0, &c, Int32(n))
        best = min(best, Date().timeIntervalSince(t0))
    }
    return 2 * Double(n * n * n) / best / 1e9
}

let comm: Communicator
do { comm = try MPICommunicator() } catch { fail("\(error)") }
guard batch % accumulate == 0, (batch / accumulate) % comm.size == 0 else {
    fail("--batch \(batch) does not split into \(accumulate) micro-batches over \(comm.size) ranks")
}
func say(_ line: String) {
    if comm.rank == 0 { print(line); fflush(nil) }
}

Precision.forNewLayers = precision
do {
    say("OpenBLAS kernel: \(BLAS.coreName), \(comm.size) rank(s), precision \(precision.rawValue)")
    for threads in threadCounts {
        try comm.barrier()
        // OpenBLAS's own threads for the peak; the layers then split work over `threads` themselves.
        // Ranks measure at the same time, so the sum is the peak of the cores the job uses.
        ComputeThreads.set(threads)
        openblas_set_num_threads(Int32(threads))
        let peak = try comm.allGather([sgemmGFLOPS(1024)]).reduce(0, +)
        ComputeThreads.set(threads)
        say(String(format: "%d rank(s) × %d thread(s): sgemm 1024³ peak %.0f GFLOPS", comm.size, threads, peak))
        for c in cases where archs.contains(c.config.arch) {
            let local = batch / accumulate / comm.size, channels = c.config.bands.count, plane = c.chip * c.chip
            let net = try makeNetwork(c.config, seed: 1)
            let model = ResidualModel(network: net, gsf: Float(c.config.gsf))
            var rng = SplitMix64(seed: 2 &+ UInt64(comm.rank))
            let x = Tensor([accumulate * local, channels, c.chip, c.chip])
            for i in 0..<x.count { x[i] = rng.normal() }
            let target = Tensor([accumulate * local, 1, c.chip, c.chip]), mask = Tensor(target.shape)
            for i in 0..<target.count { target[i] = rng.normal(); mask[i] = 1 }
            let micros = (0..<accumulate).map { m in
                (x: Tensor([local, channels, c.chip, c.chip], viewing: x.data + m * local * channels * plane),
                 target: Tensor([local, 1, c.chip, c.chip], viewing: target.data + m * local * plane),
                 mask: Tensor([local, 1, c.chip, c.chip], viewing: mask.data + m * local * plane))
            }
            let reducer = comm.size > 1 ? GradientReducer(parameters: net.parameters, communicator: comm,
                                                                mode: .bucketed(bucketBytes: Int(bucketMB * 1048576))) : nil
            let reduceGradient: ((Int) -> Void)? = reducer.map { r in { r.gradientReady($0) } }
            let adam = Adam(net.parameters, lr: 1e-4)
            func step() throws {
                net.parameters.zeroGrad()
                var sums = [Double(mask.count)]
                if comm.size > 1 { try sums.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) } }
                for (m, micro) in micros.enumerated() {
                    net.gradientReady = m == accumulate - 1 ? reduceGradient : nil
                    _ = model.forward(micro.x, training: true)
                    _ = model.loss(target: micro.target, mask: micro.mask)
                    model.backward(target: micro.target, mask: micro.mask, normalizer: sums[0])
                }
                try reducer?.finish()
                adam.step()
            }
            for _ in 0..<warmup { try step() }   // allocates the activations and workspaces
            reducer?.resetStats()
            var times: [Double] = []
            let cpu0 = cpuSeconds()
            for _ in 0..<steps { times.append(try timed(comm, step)) }
            let cpu = try comm.allGather([(cpuSeconds() - cpu0) / Double(steps)]).reduce(0, +)
            let stepSeconds = median(times)
            let tiles = Double(batch) / stepSeconds
            let gflops = tiles * c.gflopPerTile
            var exposed = 0.0, bare = 0.0
            if let reducer {
                exposed = try comm.allGather([reducer.stats.secondsInFinish / Double(reducer.stats.steps)]).max()!
                var bares: [Double] = []
                for _ in 0..<5 { bares.append(try timed(comm) { try comm.allReduceSum(net.parameters.gradBuffer) }) }
                bare = median(bares)
            }
            let rss = try comm.allGather([peakRSSMegabytes()]).reduce(0, +)
            let accumulation = accumulate > 1 ? " = \(accumulate) × \(batch / accumulate)" : ""
            var line = String(format: "  %@ (chip %d, batch %d%@): %.2f tiles/s, %.0f GFLOPS (%.0f %% of peak), median of %d steps; %.3f CPU s/step; peak RSS %.0f MB",
                              c.config.arch, c.chip, batch, accumulation, tiles, gflops, 100 * gflops / peak, steps, cpu, rss)
            if reducer != nil {
                line += String(format: "; all-reduce of %.0f MB: %.1f ms bare, %.1f ms left after backward",
                               Double(net.parameters.count * 4) / 1e6, bare * 1000, exposed * 1000)
            }
            say(line)
            if json {
                let fields: [String: Any] = [
                    "side": "swift", "arch": c.config.arch, "chip": c.chip, "batch": batch, "accumulate": accumulate, "ranks": comm.size,
                    "threads": threads, "kernel": BLAS.coreName, "precision": precision.rawValue, "steps": steps, "step_s": stepSeconds,
                    "tiles_per_s": tiles, "gflops": gflops, "sgemm_peak_gflops": peak, "cpu_s_per_step": cpu,
                    "peak_rss_mb": rss, "gradient_mb": Double(net.parameters.count * 4) / 1e6,
                    "allreduce_bare_s": bare, "allreduce_exposed_s": exposed,
                ]
                let data = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
                say("JSON " + String(decoding: data, as: UTF8.self))
            }
        }
    }
    try comm.finalize()
} catch {
    FileHandle.standardError.write(Data("train-bench: \(error)\n".utf8))
    comm.abort(code: 1)
}
