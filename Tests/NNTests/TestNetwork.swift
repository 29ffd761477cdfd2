import NN

/// The smallest `Network` with every kind of state a checkpoint holds (a conv weight and bias,
/// BatchNorm's parameters, buffers and counter), so checkpoint tests do not depend on the models.
final class TinyNetwork: Network {
    let config: ModelConfig
    let parameters: ParameterSet
    var gradientReady: ((Int) -> Void)?
    var batchNorms: [BatchNorm2d] { [] }
    let runningMean: Tensor
    let runningVar: Tensor
    let batches = Counter()
    private let output = Tensor([1, 1, 1, 1])

    init(channels: Int = 4, arch: String = "unet") {
        config = ModelConfig(arch: arch, bands: ["asp_dsm", "ndvi", "nodata_mask"], chipSize: 16, gsf: 2.5,
                             unet: UNetConfig(nInputChannels: 3, depth: 1, startKernel: channels))
        parameters = ParameterSet([
            ("encoder.0.0.0.weight", Parameter([channels, 3, 3, 3])),
            ("encoder.0.0.0.bias", Parameter([channels])),
            ("encoder.0.0.1.weight", Parameter([channels])),
            ("encoder.0.0.1.bias", Parameter([channels])),
        ])
        runningMean = Tensor([channels])
        runningVar = Tensor([channels])
    }

    func collectState(prefix: String, into state: inout [(String, StateEntry)]) {
        for (name, p) in zip(parameters.names, parameters.parameters) { state.append((name, .parameter(p))) }
        state.append(("encoder.0.0.1.running_mean", .buffer(runningMean)))
        state.append(("encoder.0.0.1.running_var", .buffer(runningVar)))
        state.append(("encoder.0.0.1.num_batches_tracked", .counter(batches)))
    }

    func forward(_ x: Tensor, training: Bool) -> Tensor { output }
    func backward(_ dy: Tensor) {}

    /// Distinct values in every entry, so a misplaced copy shows.
    func fill(seed: Float) {
        for (k, p) in parameters.parameters.enumerated() {
            for i in 0..<p.count { p.value[i] = seed + Float(k) + Float(i) / 64 }
        }
        for i in 0..<runningMean.count {
            runningMean[i] = seed - Float(i)
            runningVar[i] = seed + 1 + Float(i)
        }
        batches.value = Int64(seed * 10)
    }
}
