import Primitives

/// Coordinate-keyed noise: every value is a pure function of (seed, key, position), so a synthetic
/// scene can be rendered strip by strip, in any order, and come out identical.
struct Noise: Sendable {
    let seed: UInt64

    /// Uniform in [0, 1) for an integer lattice point.
    @inline(__always)
    func hash(_ ix: Int, _ iy: Int, _ key: UInt64) -> Double {
        var h = seed &+ key &* 0xD1B5_4A32_D192_ED03
        h = SplitMix64.mix(h ^ UInt64(bitPattern: Int64(ix)) &* 0x9E37_79B9_7F4A_7C15)
        h = SplitMix64.mix(h ^ UInt64(bitPattern: Int64(iy)) &* 0xC2B2_AE3D_27D4_EB4F)
        return Double(h >> 11) * 0x1p-53
    }

    /// Smooth value noise in [0, 1) with features about `scale` pixels across.
    func value(_ x: Double, _ y: Double, scale: Double, key: UInt64) -> Double {
        let fx = x / scale, fy = y / scale
        let x0 = fx.rounded(.down), y0 = fy.rounded(.down)
        let ix = Int(x0), iy = Int(y0)
        var tx = fx - x0, ty = fy - y0
        tx = tx * tx * (3 - 2 * tx)
        ty = ty * ty * (3 - 2 * ty)
        let a = hash(ix, iy, key), b = hash(ix + 1, iy, key)
        let c = hash(ix, iy + 1, key), d = hash(ix + 1, iy + 1, key)
        return (a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty
    }

    /// Fractal (fBm) noise, roughly in [−1, 1]: octaves of value noise, each half the size and weight.
    func fractal(_ x: Double, _ y: Double, scale: Double, octaves: Int, key: UInt64) -> Double {
        var sum = 0.0, weight = 1.0, total = 0.0, s = scale
        for octave in 0..<octaves {
            sum += weight * (2 * value(x, y, scale: s, key: key &+ UInt64(octave)) - 1)
            total += weight
            weight *= 0.5
            s *= 0.5
        }
        return sum / total * 1.6
    }
}
