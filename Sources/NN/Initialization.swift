import Primitives

/// The initializers PyTorch applies to these modules.
enum Init {
    /// nn.Conv2d / nn.ConvTranspose2d `reset_parameters`: kaiming_uniform_(a=√5) is U(±1/√fan_in),
    /// and the bias is U(±1/√fan_in) too.
    static func torchDefault(_ w: Tensor, fanIn: Int, bias: Tensor?, rng: inout SplitMix64) {
        let bound = 1 / Float(fanIn).squareRoot()
        uniform(w, bound, &rng)
        if let b = bias { uniform(b, bound, &rng) }
    }

    static func uniform(_ t: Tensor, _ bound: Float, _ rng: inout SplitMix64) {
        for i in 0..<t.count { t[i] = rng.uniform(-bound, bound) }
    }

    static func normal(_ t: Tensor, std: Float, _ rng: inout SplitMix64) {
        for i in 0..<t.count { t[i] = std * rng.normal() }
    }
}
