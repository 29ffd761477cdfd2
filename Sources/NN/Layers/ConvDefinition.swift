/// How `Conv2d` computes.
public enum ConvAlgorithm: String, CaseIterable, Sendable {
    /// The fastest route for the layer's shape: Winograd, direct narrow convolutions or
    /// im2col + GEMM (see `Conv2d`).
    case automatic
    /// The definition itself (`ConvDefinition`), summed in Double: slow, independent of every
    /// kernel and of BLAS, for telling a kernel bug from a model bug.
    case reference

    /// What layers built from now on use. Set once by the command line before a network is built.
    nonisolated(unsafe) public static var forNewLayers: ConvAlgorithm = .automatic
}

/// A convolution computed as written, the yardstick of every fast route:
///
///     y[b, o, oy, ox]  = bias[o] + Σ_c,ky,kx W[o, c, ky, kx] · x[b, c, oy·s − p + ky, ox·s − p + kx]
///     dW[o, c, ky, kx] += Σ_b,oy,ox dy[b, o, oy, ox] · x[b, c, oy·s − p + ky, ox·s − p + kx]
///     dx[b, c, iy, ix]  = Σ_o,ky,kx dy[b, o, oy, ox] · W[o, c, ky, kx]   over oy·s − p + ky = iy, ox·s − p + kx = ix
///
/// with x = 0 outside the image. Each output element is one Double sum in a fixed order, owned by
/// one thread, so the bits do not depend on the thread count.
struct ConvDefinition {
    private let n: Int, cin: Int, cout: Int, h: Int, w: Int, k: Int, s: Int, p: Int, oh: Int, ow: Int

    init(_ g: ConvGeometry, images n: Int, outChannels cout: Int) {
        (self.n, cin, self.cout, h, w) = (n, g.channels, cout, g.height, g.width)
        (k, s, p, oh, ow) = (g.kernel, g.stride, g.padding, g.outHeight, g.outWidth)
    }

    func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 into y: UnsafeMutablePointer<Float>) {
        Parallel.forEach(n &* cout) { planes, _ in
            for plane in planes {
                let b = plane / cout, o = plane % cout
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var sum = Double(bias?[o] ?? 0)
                        for c in 0..<cin {
                            for ky in 0..<k {
                                let iy = oy &* s &- p &+ ky
                                guard iy >= 0 && iy < h else { continue }
                                for kx in 0..<k {
                                    let ix = ox &* s &- p &+ kx
                                    guard ix >= 0 && ix < w else { continue }
                                    sum += Double(weight[((o &* cin &+ c) &* k &+ ky) &* k &+ kx])
                                        * Double(x[((b &* cin &+ c) &* h &+ iy) &* w &+ ix])
                                }
                            }
                        }
                        y[(plane &* oh &+ oy) &* ow &+ ox] = Float(sum)
                    }
                }
            }
        }
    }

    func weightGradient(_ x: UnsafePointer<Float>, dy: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>) {
        Parallel.forEach(cout &* cin) { pairs, _ in
            for pair in pairs {
                let o = pair / cin, c = pair % cin
                for ky in 0..<k {
                    for kx in 0..<k {
                        var sum = 0.0
                        for b in 0..<n {
                            for oy in 0..<oh {
                                let iy = oy &* s &- p &+ ky
                                guard iy >= 0 && iy < h else { continue }
                                for ox in 0..<ow {
                                    let ix = ox &* s &- p &+ kx
                                    guard ix >= 0 && ix < w else { continue }
                                    sum += Double(dy[((b &* cout &+ o) &* oh &+ oy) &* ow &+ ox])
                                        * Double(x[((b &* cin &+ c) &* h &+ iy) &* w &+ ix])
                                }
                            }
                        }
                        let at = (pair &* k &+ ky) &* k &+ kx
                        dw[at] = Float(Double(dw[at]) + sum)
                    }
                }
            }
        }
    }

    func inputGradient(_ dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>) {
        Parallel.forEach(n &* cin) { planes, _ in
            for plane in planes {
                let b = plane / cin, c = plane % cin
                for iy in 0..<h {
                    for ix in 0..<w {
                        var sum = 0.0
                        for ky in 0..<k {
                            let ty = iy &+ p &- ky
                            guard ty >= 0 && ty % s == 0 && ty / s < oh else { continue }
                            for kx in 0..<k {
                                let tx = ix &+ p &- kx
                                guard tx >= 0 && tx % s == 0 && tx / s < ow else { continue }
                                for o in 0..<cout {
                                    sum += Double(dy[((b &* cout &+ o) &* oh &+ ty / s) &* ow &+ tx / s])
                                        * Double(weight[((o &* cin &+ c) &* k &+ ky) &* k &+ kx])
                                }
                            }
                        }
                        dx[(plane &* h &+ iy) &* w &+ ix] = Float(sum)
                    }
                }
            }
        }
    }
}
