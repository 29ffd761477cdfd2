/// Conv → [BatchNorm] → ReLU as one `nn.Sequential`: the convolution is `.0`, the norm `.1`.
final class ConvBlock: StateModule {
    let conv: Conv2d
    let bn: BatchNorm2d?
    let relu = ReLU()

    init(_ cin: Int, _ cout: Int, kernel: Int = 3, padding: Int = 1, batchNorm: Bool, bias: Bool, workspace: Workspace) {
        conv = Conv2d(cin, cout, kernel: kernel, padding: padding, bias: bias, workspace: workspace)
        bn = batchNorm ? BatchNorm2d(cout) : nil
    }

    var layers: [any Layer] { bn.map { [conv, $0, relu] } ?? [conv, relu] }

    func collectState(prefix: String, into state: inout [(String, StateEntry)]) {
        conv.collectState(prefix: join(prefix, "0"), into: &state)
        bn?.collectState(prefix: join(prefix, "1"), into: &state)
    }

    func forward(_ x: Tensor, training: Bool) -> Tensor {
        guard training else { return conv.forward(x, epilogue: Epilogue(batchNorm: bn, relu: true)) }
        var y = conv.forward(x, training: training)
        if let bn { y = bn.forward(y, training: training) }
        return relu.forward(y, training: training)
    }

    func backward(_ dy: Tensor, _ done: (any Layer) -> Void) -> Tensor {
        var d = relu.backward(dy)
        if let bn { d = bn.backward(d); done(bn) }
        d = conv.backward(d)
        done(conv)
        return d
    }
}
