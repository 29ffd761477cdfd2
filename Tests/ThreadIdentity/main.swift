// thread-identity: computes every route by which the layers split work over threads at 1, 2, 3 and
// 32 threads in this one process and compares the results bit for bit. OpenBLAS picks its kernels
// once, when it loads, so NNTests' ThreadIdentityTests run this once per OPENBLAS_CORETYPE.
//
//   thread-identity [--dump DIR]
//
// Prints one line per check ("same NAME" or "differs NAME: WHAT at N threads"), then the OpenBLAS
// core, and exits 1 when anything differs. --dump writes each model's training step at 1 thread
// (loss, then every gradient) to DIR/ARCH.f32 as little-endian Float32, to compare kernels with.
import Foundation
import NN
import Primitives

let threadCounts = [1, 2, 3, 32]
var differences = 0
let dumpFolder = CommandLine.arguments.firstIndex(of: "--dump").flatMap {
    $0 + 1 < CommandLine.arguments.count ? CommandLine.arguments[$0 + 1] : nil
}

/// Runs `compute` (named results) at each thread count and reports whether they all match the 1-thread one.
@MainActor func check(_ name: String, _ compute: () throws -> [(String, [Float])]) rethrows {
    var reference: [(String, [Float])] = []
    var differing: [String] = []
    for threads in threadCounts {
        ComputeThreads.set(threads)
        let results = try compute()
        if threads == 1 {
            reference = results
            continue
        }
        for ((what, a), (_, b)) in zip(reference, results) where a != b {
            differing.append("\(what) at \(threads) threads")
        }
    }
    if differing.isEmpty {
        print("same \(name)")
    } else {
        differences += 1
        print("differs \(name): \(differing.joined(separator: ", "))")
    }
}

func random(_ shape: [Int], _ rng: inout SplitMix64) -> Tensor {
    let t = Tensor(shape)
    for i in 0..<t.count { t[i] = rng.normal() }
    return t
}

func fill(_ p: Parameter, _ rng: inout SplitMix64) {
    for i in 0..<p.count { p.value[i] = rng.normal() }
}

/// Every Conv2d route (bench/README.md's table): im2col with shared GEMMs and with whole bands,
/// several small images per GEMM (split by rows), Winograd F(2×2) and F(4×4) with one and several
/// passes, the direct narrow convolution, strided, pointwise and the 7×7 stem.
let convolutions: [(cin: Int, cout: Int, kernel: Int, stride: Int, padding: Int, shape: [Int])] = [
    (5, 64, 3, 1, 1, [2, 5, 64, 64]), (5, 16, 3, 1, 1, [4, 5, 128, 128]), (256, 256, 3, 1, 1, [4, 256, 4, 4]),
    (32, 32, 3, 1, 1, [2, 32, 40, 40]), (16, 8, 3, 1, 1, [3, 16, 96, 96]), (16, 8, 3, 1, 1, [4, 16, 256, 256]),
    (64, 1, 3, 1, 1, [2, 64, 40, 40]), (6, 64, 7, 2, 3, [2, 6, 128, 128]), (64, 128, 3, 2, 1, [2, 64, 32, 32]),
    (64, 128, 1, 2, 0, [2, 64, 32, 32]),
]
for c in convolutions {
    check("Conv2d \(c.cin)→\(c.cout) \(c.kernel)×\(c.kernel)/\(c.stride) on \(c.shape)") {
        var rng = SplitMix64(seed: 3)
        let conv = Conv2d(c.cin, c.cout, kernel: c.kernel, stride: c.stride, padding: c.padding, workspace: Workspace())
        fill(conv.weight, &rng)
        fill(conv.bias!, &rng)
        let x = random(c.shape, &rng)
        let inference = conv.forward(x, training: false).array, y = conv.forward(x, training: true)
        let dy = random(y.shape, &rng)
        conv.weight.grad.zero()
        conv.bias!.grad.zero()
        let dx = conv.backward(dy).array
        return [("inference output", inference), ("output", y.array), ("input gradient", dx),
                ("weight gradient", conv.weight.grad.array), ("bias gradient", conv.bias!.grad.array)]
    }
}

check("ConvTranspose2d 64→32 on [3, 64, 16, 16]") {
    var rng = SplitMix64(seed: 4)
    let up = ConvTranspose2d(64, 32, workspace: Workspace())
    fill(up.weight, &rng)
    fill(up.bias!, &rng)
    let y = up.forward(random([3, 64, 16, 16], &rng), training: true)
    let dx = up.backward(random(y.shape, &rng)).array
    return [("output", y.array), ("input gradient", dx), ("weight gradient", up.weight.grad.array),
            ("bias gradient", up.bias!.grad.array)]
}

check("BilinearUpsample ×2 on [3, 24, 15, 17]") {
    var rng = SplitMix64(seed: 9)
    let up = BilinearUpsample(factor: 2)
    let x = random([3, 24, 15, 17], &rng)
    let inference = up.forward(x, training: false).array, y = up.forward(x, training: true)
    let dx = up.backward(random(y.shape, &rng)).array
    return [("inference output", inference), ("output", y.array), ("input gradient", dx)]
}

check("BatchNorm2d 32 on [3, 32, 40, 40]") {
    var rng = SplitMix64(seed: 5)
    let bn = BatchNorm2d(32)
    let x = random([3, 32, 40, 40], &rng)
    let y = bn.forward(x, training: true)
    let dx = bn.backward(random(y.shape, &rng)).array
    let eval = bn.forward(x, training: false).array
    return [("output", y.array), ("input gradient", dx), ("weight gradient", bn.weight.grad.array),
            ("bias gradient", bn.bias.grad.array), ("running mean", bn.runningMean.array),
            ("running variance", bn.runningVar.array), ("eval output", eval)]
}

for (kernel, stride, padding) in [(3, 2, 1), (2, 2, 0)] {
    check("MaxPool2d \(kernel)×\(kernel)/\(stride) on [3, 16, 33, 33]") {
        var rng = SplitMix64(seed: 6)
        let pool = MaxPool2d(kernel: kernel, stride: stride, padding: padding)
        let y = pool.forward(random([3, 16, 33, 33], &rng), training: true)
        return [("output", y.array), ("input gradient", pool.backward(random(y.shape, &rng)).array)]
    }
}

check("Adam, two steps of 300k parameters") {
    var rng = SplitMix64(seed: 7)
    let p = [Parameter([300, 1000]), Parameter([7])]
    let set = ParameterSet([("a", p[0]), ("b", p[1])])
    for q in p { fill(q, &rng) }
    let adam = Adam(set, lr: 1e-3, weightDecay: 0.01)
    for _ in 0..<2 {
        for i in 0..<set.count { set.grads[i] = rng.normal() }
        adam.step()
    }
    return [("parameters", Array(set.valueBuffer))]
}

/// One training step of a whole model (forward, masked L1 loss, backward, Adam) on random chips.
func trainingStep(_ config: ModelConfig, batch: Int) throws -> [(String, [Float])] {
    var rng = SplitMix64(seed: 8)
    let network = try makeNetwork(config, seed: 1)
    let model = ResidualModel(network: network, gsf: Float(config.gsf))
    let s = config.chipSize
    let x = random([batch, config.bands.count, s, s], &rng), target = random([batch, 1, s, s], &rng)
    let mask = Tensor([batch, 1, s, s])
    for i in 0..<mask.count { mask[i] = rng.unitFloat() < 0.9 ? 1 : 0 }
    network.parameters.zeroGrad()
    _ = model.forward(x, training: true)
    let (loss, count) = model.loss(target: target, mask: mask)
    model.backward(target: target, mask: mask, normalizer: count)
    let gradients = Array(network.parameters.gradBuffer)
    let adam = Adam(network.parameters, lr: 1e-3)
    adam.step()
    return [("loss", [Float(loss / count)]), ("gradients", gradients), ("parameters", Array(network.parameters.valueBuffer))]
}

let bands = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"]
let models = [
    ModelConfig(arch: "unet", bands: Array(bands.prefix(5)), chipSize: 64, gsf: 3,
                unet: UNetConfig(nInputChannels: 5, depth: 3, startKernel: 16, maxFilterDepth: 64, doBN: true)),
    ModelConfig(arch: "resnet18-unet", bands: bands, chipSize: 64, gsf: 3, encoder: EncoderConfig(name: "resnet18", inChannels: 6)),
]
for config in models {
    var first: [(String, [Float])] = []
    try check("\(config.arch) training step, batch 3 of \(config.chipSize)²") {
        let result = try trainingStep(config, batch: 3)
        if first.isEmpty { first = result }
        return result
    }
    if let dumpFolder {
        try (first[0].1 + first[1].1).withUnsafeBytes {
            try Data($0).write(to: URL(fileURLWithPath: dumpFolder).appendingPathComponent("\(config.arch).f32"))
        }
    }
}

print("kernel \(BLAS.coreName): \(differences) of the checks differ")
exit(differences == 0 ? 0 : 1)
