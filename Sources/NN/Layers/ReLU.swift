/// nn.ReLU(inplace=True): rectifies its input in place and, in backward, masks the incoming
/// gradient in place. Safe wherever the layer before it does not need its own output for
/// backward (convolutions and BatchNorm here keep their inputs), which holds in both U-Nets.
public final class ReLU: Layer {
    private var output: Tensor?

    public init() {}

    public var parameterList: [Parameter] { [] }
    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let p = x.data
        // A select rather than a branch, so that the loop vectorizes; NaN passes through as in PyTorch.
        Parallel.forEachElement(x.count) { range in
            for i in range {
                let v = p[i]
                p[i] = v < 0 ? 0 : v
            }
        }
        output = training ? x : nil
        return x
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let y = output else { preconditionFailure("ReLU.backward before forward") }
        let g = dy.data, p = y.data
        Parallel.forEachElement(dy.count) { range in
            for i in range {
                let v = g[i]
                g[i] = p[i] > 0 ? v : 0
            }
        }
        return dy
    }
}
