import Foundation

/// SplitMix64: a tiny, fast generator whose whole state is one word, so any stream can be started
/// from a seed or a hash of (seed, step, index, …) and the same numbers come out on every machine.
/// The one generator of the package: weight initialization (NN) and chip positions, augmentation
/// and synthetic scenes (Data) draw from it, each through the method that says what it returns.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator keyed by several integers (each mixed in turn, so (1, 2) and (2, 1) differ).
    public init(keys: UInt64...) {
        var s: UInt64 = 0x6A09_E667_F3BC_C909
        for key in keys { s = SplitMix64.mix(s &+ key &* 0x9E37_79B9_7F4A_7C15) }
        state = s
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    /// SplitMix64's output function, also a good 64-bit hash.
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 bits, exactly representable as Float.
    public mutating func unitFloat() -> Float { Float(next() >> 40) / 16_777_216 }

    /// Uniform in [0, 1) with 53 bits.
    public mutating func unitDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform in [lo, hi) from `unitFloat`.
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * unitFloat() }

    /// Standard normal (Box–Muller on two 53-bit uniforms), rounded to Float.
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) / 9_007_199_254_740_992, 1e-300)
        let u2 = Double(next() >> 11) / 9_007_199_254_740_992
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Uniform in 0..<bound (bound > 0), by multiply-shift (bias below 2⁻³² for our bounds).
    public mutating func below(_ bound: Int) -> Int {
        Int((UInt64(truncatingIfNeeded: next() >> 32) &* UInt64(bound)) >> 32)
    }

    public mutating func coin() -> Bool { next() >> 63 == 1 }
}
