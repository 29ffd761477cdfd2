import CBLAS
import Foundation

/// What an optimizer must carry over a restart: its step count and its per-element buffers
/// (flat, in `ParameterSet` order). It is written beside a checkpoint, never inside it.
public struct OptimizerState: Equatable {
    public var kind: String
    public var step: Int
    public var buffers: [String: [Float]]

    public init(kind: String, step: Int, buffers: [String: [Float]]) {
        self.kind = kind
        self.step = step
        self.buffers = buffers
    }

    /// A safetensors file: one F32 tensor per buffer, kind and step in the metadata (plus
    /// whatever else the caller keeps there, e.g. the scheduler's JSON).
    public func write(to path: String, extraMetadata: [String: String] = [:]) throws {
        var w = SafeTensorsWriter(metadata: extraMetadata)
        w.metadata["optimizer"] = kind
        w.metadata["step"] = String(step)
        for name in buffers.keys.sorted() { w.add(name, shape: [buffers[name]!.count], floats: buffers[name]!) }
        try w.write(to: path)
    }

    public static func read(_ path: String) throws -> (state: OptimizerState, metadata: [String: String]) {
        let file = try SafeTensors(contentsOf: path)
        guard let kind = file.metadata["optimizer"], let step = file.metadata["step"].flatMap({ Int($0) }), step >= 0 else {
            throw NNError("\(path): not an optimizer state (needs 'optimizer' and 'step' metadata)")
        }
        var buffers: [String: [Float]] = [:]
        for t in file.tensors { buffers[t.name] = try file.floats(t.name) }
        var metadata = file.metadata
        metadata["optimizer"] = nil
        metadata["step"] = nil
        return (OptimizerState(kind: kind, step: step, buffers: buffers), metadata)
    }
}

/// Updates a `ParameterSet`'s flat values from its flat gradients.
public protocol Optimizer: AnyObject {
    var parameters: ParameterSet { get }
    /// Set by a learning-rate schedule between steps.
    var lr: Double { get set }
    var state: OptimizerState { get }
    func restore(_ state: OptimizerState) throws
    func step()
}

extension Optimizer {
    func checkRestore(_ s: OptimizerState, kind: String, buffers names: [String]) throws {
        guard s.kind == kind else { throw NNError("optimizer state is for \(s.kind), this run uses \(kind)") }
        for name in names {
            guard let b = s.buffers[name], b.count == parameters.count else {
                throw NNError("optimizer state: buffer '\(name)' missing or not of \(parameters.count) values (a different model?)")
            }
        }
    }
}

/// torch.optim.Adam (single-tensor path): L2 weight decay added to the gradient, bias-corrected
/// moments, `eps` added after the square root. Scalars are formed in Double and rounded to Float
/// once, as PyTorch passes Python floats to its Float kernels.
public final class Adam: Optimizer {
    public let parameters: ParameterSet
    public var lr: Double
    public let beta1: Double, beta2: Double, eps: Double, weightDecay: Double
    public private(set) var stepCount = 0
    private var m: [Float], v: [Float]

    public init(_ parameters: ParameterSet, lr: Double, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                weightDecay: Double = 0) {
        self.parameters = parameters
        self.lr = lr
        (beta1, beta2) = betas
        self.eps = eps
        self.weightDecay = weightDecay
        m = [Float](repeating: 0, count: parameters.count)
        v = [Float](repeating: 0, count: parameters.count)
    }

    public var state: OptimizerState {
        OptimizerState(kind: "adam", step: stepCount, buffers: ["exp_avg": m, "exp_avg_sq": v])
    }

    public func restore(_ s: OptimizerState) throws {
        try checkRestore(s, kind: "adam", buffers: ["exp_avg", "exp_avg_sq"])
        guard s.buffers["exp_avg"]!.allSatisfy(\.isFinite), s.buffers["exp_avg_sq"]!.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw NNError("Adam's moments hold values no training gives (not finite, or a negative second moment)")
        }
        m = s.buffers["exp_avg"]!
        v = s.buffers["exp_avg_sq"]!
        stepCount = s.step
    }

    public func step() {
        stepCount += 1
        let t = Double(stepCount)
        let bc1 = 1 - pow(beta1, t), bc2 = 1 - pow(beta2, t)
        let stepSize = Float(lr / bc1), bc2Sqrt = Float(bc2.squareRoot())
        let wd = Float(weightDecay), oneMinusB1 = Float(1 - beta1), b2 = Float(beta2), oneMinusB2 = Float(1 - beta2)
        let e = Float(eps)
        let n = parameters.count
        let w = parameters.values, g = parameters.grads
        m.withUnsafeMutableBufferPointer { mp in
            v.withUnsafeMutableBufferPointer { vp in
                let m = mp.baseAddress!, v = vp.baseAddress!
                Parallel.forEachElement(n) { range in
                    // Loads, then stores; deepdem_sqrtf rather than squareRoot(), which is a libm call
                    // on Linux: the loop vectorizes.
                    for i in range {
                        let wi = w[i], g0 = g[i], mi = m[i], vi = v[i]
                        let gi = wd != 0 ? g0 + wd * wi : g0
                        let mn = mi + oneMinusB1 * (gi - mi)
                        let vn = vi * b2 + oneMinusB2 * gi * gi
                        let denom = deepdem_sqrtf(vn) / bc2Sqrt + e
                        m[i] = mn
                        v[i] = vn
                        w[i] = wi - stepSize * (mn / denom)
                    }
                }
            }
        }
    }
}
