// Training-step (forward, backward, Adam) throughput of the two architectures at the sizes the performance issue
// names, with the achieved GFLOPS and the sgemm peak of the same cores for scale.
//   swift run -c release train-bench [--threads 1,2] [--steps N] [--arch unet,resnet18-unet]
import CBLAS
import Foundation
import NN

struct Case {
    let name: String
    let config: ModelConfig
    let chip: Int, batch: Int
    /// Forward+backward FLOPs of one tile (the performance issue's figures).
    let gflopPerTile: Double
}

let unet = ModelConfig(arch: "unet", bands: ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask"],
                       chipSize: 128, gsf: 20,
                       unet: UNetConfig(nInputChannels: 5, depth: 5, startKernel: 64, maxFilterDepth: 512, doBN: false))
let resnet = ModelConfig(arch: "resnet18-unet", bands: ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask",
                                                        "triangulation_error"],
                         chipSize: 256, gsf: 35, encoder: EncoderConfig(name: "resnet18", inChannels: 6))
let cases = [Case(name: "unet (chip 128, batch 4, 5 bands)", config: unet, chip: 128, batch: 4, gflopPerTile: 14.9),
             Case(name: "resnet18-unet (chip 256, batch 4, 6 bands)", config: resnet, chip: 256, batch: 4, gflopPerTile: 32.7)]

var threadCounts = [1, 2]
var steps = 5
var archs = ["unet", "resnet18-unet"]
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--threads": threadCounts = (args.popFirst() ?? "1").split(separator: ",").compactMap { Int($0) }
    case "--steps": steps = Int(args.popFirst() ?? "5") ?? 5
    case "--arch": archs = (args.popFirst() ?? "").split(separator: ",").map(String.init)
    default: FileHandle.standardError.write(Data("usage: train-bench [--threads 1,2] [--steps N] [--arch unet,resnet18-unet]\n".utf8)); exit(2)
    }
}

func sgemmGFLOPS(_ n: Int) -> Double {
    let a = [Float](repeating: 1, count: n * n), b = a
    var c = [Float](repeating: 0, count: n * n)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n), 0, &c, Int32(n))
    var best = Double.infinity
    for _ in 0..<5 {
        let t0 = Date()
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n), 0, &c, Int32(n))
        best = min(best, Date().timeIntervalSince(t0))
    }
    return 2 * Double(n * n * n) / best / 1e9
}

/// CPU seconds of the whole process (all threads): on a machine shared with other jobs this, not
/// the wall clock, is what compares two builds run one after the other.
func cpuSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

print("OpenBLAS kernel: \(BLAS.coreName)")
for threads in threadCounts {
    BLAS.setThreads(threads)
    let peak = sgemmGFLOPS(1024)
    print(String(format: "threads %d: sgemm 1024³ peak %.0f GFLOPS", threads, peak))
    for c in cases where archs.contains(c.config.arch) {
        let net = try makeNetwork(c.config, seed: 1)
        let model = ResidualModel(network: net, gsf: Float(c.config.gsf))
        var rng = SplitMix64(seed: 2)
        let channels = c.config.bands.count
        let x = Tensor([c.batch, channels, c.chip, c.chip])
        for i in 0..<x.count { x[i] = rng.normal() }
        let target = Tensor([c.batch, 1, c.chip, c.chip]), mask = Tensor(target.shape)
        for i in 0..<target.count { target[i] = rng.normal(); mask[i] = 1 }
        let adam = Adam(net.parameters, lr: 1e-4)
        func step() {
            net.parameters.zeroGrad()
            _ = model.forward(x, training: true)
            let (_, count) = model.loss(target: target, mask: mask)
            model.backward(target: target, mask: mask, normalizer: count)
            adam.step()
        }
        step()   // warm-up: allocates the activations
        var times: [Double] = [], cpuTimes: [Double] = []
        for _ in 0..<steps {
            let t0 = Date(), c0 = cpuSeconds()
            step()
            times.append(Date().timeIntervalSince(t0))
            cpuTimes.append(cpuSeconds() - c0)
        }
        let median = times.sorted()[times.count / 2]
        let tiles = Double(c.batch) / median
        let gflops = tiles * c.gflopPerTile
        print(String(format: "  %@: %.2f tiles/s, %.0f GFLOPS (%.0f %% of sgemm peak), median of %d steps; %.3f CPU s/step",
                     c.name, tiles, gflops, 100 * gflops / peak, steps, cpuTimes.sorted()[steps / 2]))
    }
}
