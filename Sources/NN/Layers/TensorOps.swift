/// out = a + b (elementwise, same shape).
func add(_ a: Tensor, _ b: Tensor, into out: Tensor) {
    precondition(a.shape == b.shape && a.count == out.count, "add: \(a.shape) + \(b.shape)")
    let p = a.data, q = b.data, o = out.data
    Parallel.forEachElement(a.count) { range in
        for i in range { o[i] = p[i] + q[i] }
    }
}

/// a += b (elementwise).
func accumulate(_ a: Tensor, _ b: Tensor) {
    precondition(a.count == b.count, "accumulate: \(a.shape) += \(b.shape)")
    let p = a.data, q = b.data
    Parallel.forEachElement(a.count) { range in
        for i in range { p[i] += q[i] }
    }
}

/// Copies `src` [N, C, H, W] into channels `at`…`at` + C − 1 of `out` [N, C′, H, W]: the second
/// half of a channel concatenation (torch.cat(dim=1)) whose first half was written in place.
func copyChannels(_ src: Tensor, into out: Tensor, at first: Int) {
    precondition(src.n == out.n && first + src.c <= out.c && src.h == out.h && src.w == out.w,
                 "copyChannels: \(src.shape) into \(out.shape) at \(first)")
    let hw = src.h &* src.w, c = src.c, stride = out.c
    Parallel.forEach(src.n &* c, grain: max(1, (1 << 14) / hw)) { planes, _ in
        for p in planes {
            (out.data + ((p / c) &* stride &+ first &+ p % c) &* hw).update(from: src.data + p &* hw, count: hw)
        }
    }
}

/// The adjoint of the concatenation: splits d(out) into da and db.
func splitChannels(_ d: Tensor, into da: Tensor, _ db: Tensor) {
    let hw = da.h &* da.w, ca = da.c &* hw, cb = db.c &* hw
    for n in 0..<da.n {
        let src = d.data + n &* (ca &+ cb)
        (da.data + n &* ca).update(from: src, count: ca)
        (db.data + n &* cb).update(from: src + ca, count: cb)
    }
}
