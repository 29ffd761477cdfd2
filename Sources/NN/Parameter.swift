/// A trainable tensor and its gradient, named as in PyTorch's `state_dict()`.
public final class Parameter {
    public private(set) var value: Tensor
    public private(set) var grad: Tensor

    public init(_ shape: [Int]) {
        value = Tensor(shape)
        grad = Tensor(shape)
    }

    public var shape: [Int] { value.shape }
    public var count: Int { value.count }

    /// Moves value and gradient into slices of flat buffers (see `ParameterSet`); the gradient's
    /// slice must be zero.
    func rebind(value v: UnsafeMutablePointer<Float>, grad g: UnsafeMutablePointer<Float>) {
        let newValue = Tensor(shape, viewing: v)
        newValue.copy(from: value)
        value = newValue
        grad = Tensor(shape, viewing: g)
    }
}

/// BatchNorm's `num_batches_tracked`: an integer buffer, saved as I64.
public final class Counter {
    public var value: Int64 = 0
    public init() {}
}

/// One named entry of a module's state, in PyTorch's `state_dict()` order.
public enum StateEntry {
    case parameter(Parameter)
    case buffer(Tensor)
    case counter(Counter)

    public var shape: [Int] {
        switch self {
        case .parameter(let p): return p.shape
        case .buffer(let t): return t.shape
        case .counter: return []
        }
    }
}

/// Anything that owns named state; names compose with dots as PyTorch's do
/// (`encoder.0.0.weight`).
public protocol StateModule: AnyObject {
    func collectState(prefix: String, into state: inout [(String, StateEntry)])
}

public extension StateModule {
    /// The full state in `state_dict()` order.
    func state() -> [(String, StateEntry)] {
        var s: [(String, StateEntry)] = []
        collectState(prefix: "", into: &s)
        return s
    }
}

@inline(__always) func join(_ prefix: String, _ name: String) -> String {
    prefix.isEmpty ? name : prefix + "." + name
}
