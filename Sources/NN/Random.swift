import Foundation

/// A small, seedable generator (SplitMix64) whose state is one integer, so it can be saved with
/// a training run and restored exactly.
public struct SplitMix64: RandomNumberGenerator, Codable, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 bits, exactly representable as Float.
    public mutating func unit() -> Float { Float(next() >> 40) / 16_777_216 }

    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * unit() }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) / 9_007_199_254_740_992, 1e-300)
        let u2 = Double(next() >> 11) / 9_007_199_254_740_992
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

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
