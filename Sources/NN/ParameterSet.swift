import Foundation

/// All parameters of a network, their values and gradients packed into two flat buffers.
///
/// The buffers hold the parameters in reverse `state_dict()` order, the order in which backward
/// finishes them, so that a contiguous range of the gradient buffer (a bucket) becomes ready as
/// one piece and can be all-reduced while backward goes on. Optimizers update the flat buffers.
public final class ParameterSet {
    public let names: [String]
    public let parameters: [Parameter]
    /// Offset of `parameters[i]` in the flat buffers.
    public let offsets: [Int]
    public let count: Int
    public let values: UnsafeMutablePointer<Float>
    public let grads: UnsafeMutablePointer<Float>

    public init(_ named: [(String, Parameter)]) {
        names = named.map(\.0)
        parameters = named.map(\.1)
        count = parameters.reduce(0) { $0 + $1.count }
        var offs = [Int](repeating: 0, count: parameters.count)
        var at = 0
        for i in parameters.indices.reversed() {
            offs[i] = at
            at += parameters[i].count
        }
        offsets = offs
        let n = max(count, 1)
        values = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64).bindMemory(to: Float.self, capacity: n)
        // Zeroed pages straight from the system, left untouched (not resident) until backward
        // writes them: inference never does (resnet18-unet refinement: 57 MB less).
        grads = calloc(n, 4)!.bindMemory(to: Float.self, capacity: n)
        for (i, p) in parameters.enumerated() {
            p.rebind(value: values + offs[i], grad: grads + offs[i])
        }
    }

    deinit {
        UnsafeMutableRawPointer(values).deallocate()
        free(grads)
    }

    public func zeroGrad() { grads.update(repeating: 0, count: count) }

    public var valueBuffer: UnsafeMutableBufferPointer<Float> { .init(start: values, count: count) }
    public var gradBuffer: UnsafeMutableBufferPointer<Float> { .init(start: grads, count: count) }

    /// Index of a parameter by identity.
    public func index(of p: Parameter) -> Int? { parameters.firstIndex { $0 === p } }
}
