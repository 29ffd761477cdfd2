/// A 3×3, stride-1, padding-1 convolution with very few output channels (the U-Nets' last layer has
/// one), computed directly: Winograd and im2col would both expand the whole input only to feed
/// GEMMs with one row (bench/README.md). Each
/// output row is accumulated eight columns at a time in a register over every input channel and
/// kernel row, reading a zero-bordered copy of the input so that no tap needs a bounds check;
/// backward reads bordered copies the same way.
struct NarrowConv {
    let cin: Int, cout: Int
    let n: Int, h: Int, w: Int

    static func applies(kernel: Int, stride: Int, padding: Int, outChannels: Int) -> Bool {
        kernel == 3 && stride == 1 && padding == 1 && outChannels <= 4
    }

    /// Rows of the bordered copy: one zero column on the left, at least one on the right.
    var pw: Int { w + 2 }
    var ph: Int { h + 2 }

    /// Planes `planes` of the h × w planes at `src` into the same planes of `padded`, with a zero border.
    private func border(_ src: UnsafePointer<Float>, planes: Range<Int>, into padded: UnsafeMutablePointer<Float>) {
        let (h, w, ph, pw) = (self.h, self.w, self.ph, self.pw)
        for c in planes {
            let plane = padded + c &* ph &* pw, from = src + c &* h &* w
            plane.update(repeating: 0, count: pw)
            (plane + (ph &- 1) &* pw).update(repeating: 0, count: pw)
            for r in 0..<h {
                let row = plane + (r &+ 1) &* pw
                row[0] = 0
                row[w &+ 1] = 0
                (row + 1).update(from: from + r &* w, count: w)
            }
        }
    }

    func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 into y: UnsafeMutablePointer<Float>, workspace ws: Workspace) {
        let padded = ws.buffer(cin * ph * pw, .borderedInput)
        let (cin, cout, h, w) = (self.cin, self.cout, self.h, self.w)
        for b in 0..<n {
            Parallel.forEach(cin) { channels, _ in border(x + b &* cin &* h &* w, planes: channels, into: padded) }
            correlate(padded, planes: cin, taps: weight, bias: bias, into: y + b &* cout &* h &* w, planes: cout)
        }
    }

    /// out[o][y][x] = bias[o] + Σ_c Σ_ky,kx taps[o][c][ky][kx]·padded[c][y + ky][x + kx] for the
    /// `outPlanes` planes of one image, from the `inPlanes` bordered planes of `padded`.
    private func correlate(_ padded: UnsafePointer<Float>, planes inPlanes: Int, taps weight: UnsafePointer<Float>,
                           bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>, planes outPlanes: Int) {
        let (h, w, ph, pw) = (self.h, self.w, self.ph, self.pw)
        Parallel.forEach(outPlanes &* h, grain: 8) { rows, _ in
            for item in rows {
                let o = item / h, oy = item % h
                let out = y + (o &* h &+ oy) &* w
                let taps = weight + o &* inPlanes &* 9, b0 = bias?[o] ?? 0
                var i = 0
                while i &+ 8 <= w {
                    var acc = SIMD8<Float>(repeating: b0)
                    for c in 0..<inPlanes {
                        let k = taps + c &* 9, top = padded + ((c &* ph &+ oy) &* pw &+ i)
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
                    for c in 0..<inPlanes {
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

    /// dW += Σ over the batch of dy ⋆ x (each tap's sum over an image in eight lanes, then added),
    /// and dx = the convolution of dy with the flipped kernels when `dx` is given. Each input channel
    /// is one worker's: the sums do not depend on the number of workers.
    func backward(_ x: UnsafePointer<Float>, dy: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                  weightGradient dw: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?, workspace ws: Workspace) {
        let (cin, cout, h, w, ph, pw) = (self.cin, self.cout, self.h, self.w, self.ph, self.pw)
        // One bordered input plane per worker, used while it is in cache; dy bordered once per image.
        let planes = (0..<Parallel.workers).map { ws.buffer(ph * pw, .plane($0)) }, paddedDY = ws.buffer(cout * ph * pw, .borderedGradient)
        // dx[c][y][x] = Σ_o Σ_ky,kx W[o][c][ky][kx]·dy[o][y + 1 − ky][x + 1 − kx]: the correlation of
        // the bordered dy with each kernel turned by 180°, transposed to [cin][cout][3][3].
        let flipped = ws.buffer(cin * cout * 9, .turnedWeights)
        if dx != nil {
            for o in 0..<cout {
                for c in 0..<cin {
                    for k in 0..<9 { flipped[(c &* cout &+ o) &* 9 &+ k] = weight[(o &* cin &+ c) &* 9 &+ 8 &- k] }
                }
            }
        }
        let vectorEnd = w & ~7
        for b in 0..<n {
            let dyb = dy + b &* cout &* h &* w
            Parallel.forEach(cin) { channels, worker in
                let padded = planes[worker]
                for c in channels {
                    border(x + (b &* cin &+ c) &* h &* w, planes: 0..<1, into: padded)
                    for o in 0..<cout {
                        // a[3·ky + kx] = Σ dy[y][x]·x[y + ky − 1][x + kx − 1], eight columns per lane.
                        var a0 = SIMD8<Float>.zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0
                        var tail = SIMD16<Float>.zero   // taps 0…8 of the columns past the last eight
                        for oy in 0..<h {
                            let d = dyb + (o &* h &+ oy) &* w, top = UnsafePointer(padded + oy &* pw)
                            var i = 0
                            while i < vectorEnd {
                                let g = load8(d + i), r0 = top + i, r1 = r0 + pw, r2 = r1 + pw
                                a0 += g * load8(r0); a1 += g * load8(r0 + 1); a2 += g * load8(r0 + 2)
                                a3 += g * load8(r1); a4 += g * load8(r1 + 1); a5 += g * load8(r1 + 2)
                                a6 += g * load8(r2); a7 += g * load8(r2 + 1); a8 += g * load8(r2 + 2)
                                i &+= 8
                            }
                            while i < w {
                                for k in 0..<9 { tail[k] += d[i] * top[(k / 3) &* pw &+ i &+ k % 3] }
                                i &+= 1
                            }
                        }
                        let taps = dw + (o &* cin &+ c) &* 9
                        taps[0] += a0.sum() + tail[0]; taps[1] += a1.sum() + tail[1]; taps[2] += a2.sum() + tail[2]
                        taps[3] += a3.sum() + tail[3]; taps[4] += a4.sum() + tail[4]; taps[5] += a5.sum() + tail[5]
                        taps[6] += a6.sum() + tail[6]; taps[7] += a7.sum() + tail[7]; taps[8] += a8.sum() + tail[8]
                    }
                }
            }
            guard let dx else { continue }
            border(dyb, planes: 0..<cout, into: paddedDY)
            correlate(paddedDY, planes: cout, taps: flipped, bias: nil, into: dx + b &* cin &* h &* w, planes: cin)
        }
    }

    @inline(__always) private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
}
