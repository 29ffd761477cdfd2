/// Four tiles (or kernels) at a time: the transform loops' unit of work.
typealias V4 = SIMD4<Float>

/// Unaligned 4-float vector access for the transform loops.
@inline(__always) func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
}

@inline(__always) func load4(_ p: UnsafeMutablePointer<Float>) -> SIMD4<Float> { load4(UnsafePointer(p)) }

@inline(__always) func store4(_ v: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD4<Float>.self)
}

/// p[0], p[2], p[4], p[6] and p[1], p[3], p[5], p[7].
@inline(__always) func loadDeinterleaved(_ p: UnsafePointer<Float>) -> (SIMD4<Float>, SIMD4<Float>) {
    let a = load4(p), b = load4(p + 4)
    return (SIMD4(a[0], a[2], b[0], b[2]), SIMD4(a[1], a[3], b[1], b[3]))
}

/// a[0], b[0], a[1], b[1], … into p[0…7].
@inline(__always) func storeInterleaved(_ a: SIMD4<Float>, _ b: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
    store4(SIMD4(a[0], b[0], a[1], b[1]), p)
    store4(SIMD4(a[2], b[2], a[3], b[3]), p + 4)
}

/// The 4×4 transpose: lane l of result k is lane k of input l.
@inline(__always) func transpose4(_ a: SIMD4<Float>, _ b: SIMD4<Float>, _ c: SIMD4<Float>, _ d: SIMD4<Float>)
    -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
    (SIMD4(a[0], b[0], c[0], d[0]), SIMD4(a[1], b[1], c[1], d[1]), SIMD4(a[2], b[2], c[2], d[2]), SIMD4(a[3], b[3], c[3], d[3]))
}

/// Tap i (0…8, row-major) of 3×3 kernels at, at + 1, at + 2, at + 3 as one vector each; lanes
/// past `count` repeat the last kernel.
@inline(__always) func kernelTaps(_ wt: UnsafePointer<Float>, _ at: Int, _ count: Int)
    -> (V4, V4, V4, V4, V4, V4, V4, V4, V4) {
    let k0 = wt + at &* 9, k1 = wt + (at &+ min(1, count &- 1)) &* 9
    let k2 = wt + (at &+ min(2, count &- 1)) &* 9, k3 = wt + (at &+ min(3, count &- 1)) &* 9
    func tap(_ i: Int) -> V4 { V4(k0[i], k1[i], k2[i], k3[i]) }
    return (tap(0), tap(1), tap(2), tap(3), tap(4), tap(5), tap(6), tap(7), tap(8))
}

/// Stores the first `count` lanes of `v` at p[0…].
@inline(__always) func store(_ v: V4, _ p: UnsafeMutablePointer<Float>, lanes count: Int) {
    if count == 4 {
        store4(v, p)
    } else {
        for l in 0..<count { p[l] = v[l] }
    }
}

/// The first `count` (≤ 16) floats of a row split by column parity or phase, vectorized: `phases`
/// is 2 (even/odd columns, each `stride` floats apart) or 4. Column q = x + at of the destination
/// row gets src[x]; the destination must be zero where nothing lands.
@inline(__always) func splitRow(_ src: UnsafePointer<Float>, count w: Int, at: Int, phases: Int,
                                into row: UnsafeMutablePointer<Float>, stride: Int) {
    var x = 0
    if phases == 4 {
        while x &+ 16 <= w {
            let (c0, c1, c2, c3) = transpose4(load4(src + x), load4(src + (x &+ 4)), load4(src + (x &+ 8)), load4(src + (x &+ 12)))
            // Column x + p lands in phase (p + at) & 3 at index x/4 + (p + at)/4.
            let m = x >> 2
            func put(_ c: V4, _ p: Int) {
                let q = p &+ at
                store4(c, row + ((q & 3) &* stride &+ m &+ q >> 2))
            }
            put(c0, 0); put(c1, 1); put(c2, 2); put(c3, 3)
            x &+= 16
        }
    } else {
        while x &+ 8 <= w {
            let a = load4(src + x), b = load4(src + (x &+ 4))
            let evens = V4(a[0], a[2], b[0], b[2]), odds = V4(a[1], a[3], b[1], b[3])
            let m = x >> 1
            store4(evens, row + ((at & 1) &* stride &+ m &+ at >> 1))
            store4(odds, row + (((1 &+ at) & 1) &* stride &+ m &+ (1 &+ at) >> 1))
            x &+= 8
        }
    }
    let mask = phases &- 1, shift = phases == 4 ? 2 : 1
    while x < w {
        let q = x &+ at
        row[(q & mask) &* stride &+ q >> shift] = src[x]
        x &+= 1
    }
}

/// Σ p[0..<n] with eight partial sums (a single running sum is bound by the add's latency).
@inline(__always) func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var a = V4.zero, b = V4.zero, i = 0
    while i &+ 8 <= n {
        a += load4(p + i)
        b += load4(p + (i &+ 4))
        i &+= 8
    }
    var s = (a + b).sum()
    while i < n {
        s += p[i]
        i &+= 1
    }
    return s
}

/// Σ p[i] and Σ p[i]² in Double, four partial sums each.
@inline(__always) func sumAndSquares(_ p: UnsafePointer<Float>, _ n: Int) -> (Double, Double) {
    var s = SIMD4<Double>.zero, q = SIMD4<Double>.zero, i = 0
    while i &+ 4 <= n {
        let v = SIMD4<Double>(Double(p[i]), Double(p[i &+ 1]), Double(p[i &+ 2]), Double(p[i &+ 3]))
        s += v
        q += v * v
        i &+= 4
    }
    var ss = s.sum(), qq = q.sum()
    while i < n {
        let v = Double(p[i])
        ss += v
        qq += v * v
        i &+= 1
    }
    return (ss, qq)
}
