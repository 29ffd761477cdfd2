/// The forward pass of a 3×3, stride-1, padding-1 convolution with very few output channels (the
/// U-Nets' last layer has one), computed directly: Winograd and im2col would both expand the whole
/// input only to feed GEMMs with one row. Each output row is accumulated eight columns at a time
/// in a register over every input channel and kernel row, reading a zero-bordered copy of the
/// input so that no tap needs a bounds check.
struct NarrowConv {
    let cin: Int, cout: Int
    let n: Int, h: Int, w: Int

    static func applies(kernel: Int, stride: Int, padding: Int, outChannels: Int) -> Bool {
        kernel == 3 && stride == 1 && padding == 1 && outChannels <= 4
    }

    /// Rows of the bordered copy: one zero column on the left, at least one on the right.
    var pw: Int { w + 2 }
    var ph: Int { h + 2 }

    func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 into y: UnsafeMutablePointer<Float>, workspace ws: Workspace) {
        let padded = ws.buffer(cin * ph * pw, slot: 4)
        let (cin, cout, h, w, ph, pw) = (self.cin, self.cout, self.h, self.w, self.ph, self.pw)
        for b in 0..<n {
            Parallel.forEach(cin) { channels, _ in
                for c in channels {
                    let plane = padded + c &* ph &* pw, src = x + (b &* cin &+ c) &* h &* w
                    plane.update(repeating: 0, count: pw)
                    (plane + (ph &- 1) &* pw).update(repeating: 0, count: pw)
                    for r in 0..<h {
                        let row = plane + (r &+ 1) &* pw
                        row[0] = 0
                        row[w &+ 1] = 0
                        (row + 1).update(from: src + r &* w, count: w)
                    }
                }
            }
            Parallel.forEach(cout &* h, grain: 8) { rows, _ in
                for item in rows {
                    let o = item / h, oy = item % h
                    let out = y + ((b &* cout &+ o) &* h &+ oy) &* w
                    let taps = weight + o &* cin &* 9, b0 = bias?[o] ?? 0
                    var i = 0
                    while i &+ 8 <= w {
                        var acc = SIMD8<Float>(repeating: b0)
                        for c in 0..<cin {
                            let k = taps + c &* 9, top = UnsafePointer(padded + ((c &* ph &+ oy) &* pw &+ i))
                            for ky in 0..<3 {
                                let r = top + ky &* pw, t = k + ky &* 3
                                let left: SIMD8<Float> = t[0] * load8(r), middle: SIMD8<Float> = t[1] * load8(r + 1)
                                let right: SIMD8<Float> = t[2] * load8(r + 2)
                                acc += left + middle + right
                            }
                        }
                        UnsafeMutableRawPointer(out + i).storeBytes(of: acc, as: SIMD8<Float>.self)
                        i &+= 8
                    }
                    while i < w {
                        var acc = b0
                        for c in 0..<cin {
                            let k = taps + c &* 9, top = padded + ((c &* ph &+ oy) &* pw &+ i)
                            for ky in 0..<3 {
                                let r = top + ky &* pw, t = k + ky &* 3
                                acc += t[0] * r[0] + t[1] * r[1] + t[2] * r[2]
                            }
                        }
                        out[i] = acc
                        i &+= 1
                    }
                }
            }
        }
    }

    @inline(__always) private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
}
