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

/// Channel concatenation [N, Ca + Cb, H, W] of a and b (torch.cat(dim=1)).
func concatChannels(_ a: Tensor, _ b: Tensor, into out: Tensor) {
    let hw = a.h &* a.w, ca = a.c &* hw, cb = b.c &* hw
    for n in 0..<a.n {
        let dst = out.data + n &* (ca &+ cb)
        dst.update(from: a.data + n &* ca, count: ca)
        (dst + ca).update(from: b.data + n &* cb, count: cb)
    }
}

/// The adjoint of concatChannels: splits d(out) into da and db.
func splitChannels(_ d: Tensor, into da: Tensor, _ db: Tensor) {
    let hw = da.h &* da.w, ca = da.c &* hw, cb = db.c &* hw
    for n in 0..<da.n {
        let src = d.data + n &* (ca &+ cb)
        (da.data + n &* ca).update(from: src, count: ca)
        (db.data + n &* cb).update(from: src + ca, count: cb)
    }
}
