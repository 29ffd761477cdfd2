/// Sums per-channel statistics over the processes that share a batch (SyncBatchNorm); NN knows
/// nothing of ranks, the caller supplies the reduction. The buffer is summed in place.
public typealias StatisticsReducer = (UnsafeMutableBufferPointer<Double>) -> Void

/// nn.BatchNorm2d (affine, track_running_stats, eps 1e-5, momentum 0.1).
///
/// Training normalizes with the batch mean and biased variance and moves the running statistics
/// toward the batch mean and the *unbiased* variance, as PyTorch does; eval uses the running ones.
/// Backward (training): dx = γ·σ⁻¹/M · (M·dy − Σdy − x̂·Σ(dy·x̂)).
public final class BatchNorm2d: Layer {
    public let channels: Int
    public let weight: Parameter, bias: Parameter
    public let runningMean: Tensor, runningVar: Tensor
    public let numBatchesTracked = Counter()
    public var eps: Float = 1e-5
    public var momentum: Float = 0.1
    public var reducer: StatisticsReducer?
    private var input: Tensor?
    private var trainingMode = true
    private let mean: Tensor, invStd: Tensor
    private var count = 0.0
    /// Per channel Σ and Σ² (forward) or Σdy and Σdy·x̂ (backward), then the element count: what
    /// the reducer sums over ranks.
    private let stats: UnsafeMutableBufferPointer<Double>
    private var out = Slot()

    public init(_ channels: Int) {
        self.channels = channels
        weight = Parameter([channels])
        bias = Parameter([channels])
        runningMean = Tensor([channels])
        runningVar = Tensor([channels])
        mean = Tensor([channels])
        invStd = Tensor([channels])
        stats = .allocate(capacity: 2 * channels + 1)
        stats.initialize(repeating: 0)
        reset()
    }

    deinit { stats.deallocate() }

    public var parameterList: [Parameter] { [weight, bias] }

    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {
        state.append((join(prefix, "weight"), .parameter(weight)))
        state.append((join(prefix, "bias"), .parameter(bias)))
        state.append((join(prefix, "running_mean"), .buffer(runningMean)))
        state.append((join(prefix, "running_var"), .buffer(runningVar)))
        state.append((join(prefix, "num_batches_tracked"), .counter(numBatchesTracked)))
    }

    func reset() {
        for c in 0..<channels {
            weight.value[c] = 1
            bias.value[c] = 0
            runningMean[c] = 0
            runningVar[c] = 1
        }
        numBatchesTracked.value = 0
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.c == channels, "BatchNorm2d: input has \(x.c) channels, expected \(channels)")
        input = training ? x : nil
        trainingMode = training
        let n = x.n, hw = x.h &* x.w
        let y = training ? out.get(x.shape) : out.transient(x.shape)
        if training {
            let channels = self.channels, sums = stats.baseAddress!
            Parallel.forEach(channels) { range, _ in
                for c in range {
                    var sum = 0.0, squares = 0.0
                    for b in 0..<n {
                        let (s, q) = sumAndSquares(x.data + (b &* channels &+ c) &* hw, hw)
                        sum += s
                        squares += q
                    }
                    sums[c] = sum
                    sums[channels &+ c] = squares
                }
            }
            stats[2 &* channels] = Double(n &* hw)
            reducer?(stats)
            count = stats[2 &* channels]
            for c in 0..<channels {
                let m = stats[c] / count
                let v = max(stats[channels &+ c] / count - m * m, 0)
                mean[c] = Float(m)
                invStd[c] = Float(1 / (v + Double(eps)).squareRoot())
                let unbiased = count > 1 ? v * count / (count - 1) : v
                runningMean[c] = (1 - momentum) * runningMean[c] + momentum * Float(m)
                runningVar[c] = (1 - momentum) * runningVar[c] + momentum * Float(unbiased)
            }
            numBatchesTracked.value += 1
        }
        let (scale, shift) = training ? affine() : inferenceAffine(), channels = self.channels
        Parallel.forEach(channels) { range, _ in
            for c in range {
                let a = scale[c], b0 = shift[c]
                for b in 0..<n {
                    let off = (b &* channels &+ c) &* hw
                    let p = x.data + off, q = y.data + off
                    for i in 0..<hw { q[i] = p[i] * a + b0 }
                }
            }
        }
        return y
    }

    /// Eval mode's per-channel y = x·a + b, from the running statistics (`Epilogue` folds it into
    /// the convolution before).
    func inferenceAffine() -> (scale: [Float], shift: [Float]) {
        for c in 0..<channels {
            mean[c] = runningMean[c]
            invStd[c] = 1 / (runningVar[c] + eps).squareRoot()
        }
        return affine()
    }

    /// y = x·a + b per channel for the current mean and 1/σ.
    private func affine() -> (scale: [Float], shift: [Float]) {
        let a = (0..<channels).map { weight.value[$0] * invStd[$0] }
        return (a, (0..<channels).map { bias.value[$0] - mean[$0] * a[$0] })
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("BatchNorm2d.backward before forward") }
        precondition(trainingMode, "BatchNorm2d.backward after an eval-mode forward")
        let n = x.n, hw = x.h &* x.w
        let dxT = TensorPool.shared.tensor(x.shape)
        // stats[c] = Σ dy, stats[C + c] = Σ dy·x̂ over the (global) batch.
        let channels = self.channels, sums = stats.baseAddress!, mean = self.mean.data, invStd = self.invStd.data
        Parallel.forEach(channels) { range, _ in
            for c in range {
                let m = mean[c], s = invStd[c]
                var sumG = 0.0, sumGX = 0.0
                for b in 0..<n {
                    let off = (b &* channels &+ c) &* hw
                    let (sg, sgx) = Self.gradientSums(dy.data + off, x.data + off, hw, mean: m, invStd: s)
                    sumG += sg
                    sumGX += sgx
                }
                sums[c] = sumG
                sums[channels &+ c] = sumGX
            }
        }
        stats[2 &* channels] = 0
        // The parameter gradients take this process's share only: the gradient all-reduce sums them.
        for c in 0..<channels {
            bias.grad[c] += Float(stats[c])
            weight.grad[c] += Float(stats[channels &+ c])
        }
        reducer?(stats)
        let gamma = weight.value.data, count = self.count
        Parallel.forEach(channels) { range, _ in
            for c in range {
                let m = mean[c], s = invStd[c]
                let k = gamma[c] * s
                let meanG = Float(sums[c] / count), meanGX = Float(sums[channels &+ c] / count)
                for b in 0..<n {
                    let off = (b &* channels &+ c) &* hw
                    let p = x.data + off, g = dy.data + off, d = dxT.data + off
                    for i in 0..<hw {
                        let xh = (p[i] - m) * s
                        d[i] = k * (g[i] - meanG - xh * meanGX)
                    }
                }
            }
        }
        return dxT
    }

    /// Σ g and Σ g·x̂ (x̂ = (x − mean)·invStd) in Double, four partial sums each.
    private static func gradientSums(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int,
                                     mean m: Float, invStd s: Float) -> (Double, Double) {
        var a = SIMD4<Double>.zero, b = SIMD4<Double>.zero, i = 0
        let mv = V4(repeating: m), sv = V4(repeating: s)
        while i &+ 4 <= n {
            let gv = load4(g + i), xh = (load4(x + i) - mv) * sv
            let gd = SIMD4<Double>(Double(gv[0]), Double(gv[1]), Double(gv[2]), Double(gv[3]))
            a += gd
            b += gd * SIMD4<Double>(Double(xh[0]), Double(xh[1]), Double(xh[2]), Double(xh[3]))
            i &+= 4
        }
        var sg = a.sum(), sgx = b.sum()
        while i < n {
            let gi = Double(g[i])
            sg += gi
            sgx += gi * Double((x[i] - m) * s)
            i &+= 1
        }
        return (sg, sgx)
    }
}
