/// torchvision's ResNet BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), where the
/// shortcut is `downsample` (conv1×1/stride + BN) when the shape changes, else the identity.
final class BasicBlock: ResNetBlock {
    let conv1: Conv2d, bn1: BatchNorm2d, relu1 = ReLU()
    let conv2: Conv2d, bn2: BatchNorm2d
    let downsample: (conv: Conv2d, bn: BatchNorm2d)?
    let relu = ReLU()
    private var sum = Slot(), dx = Slot()

    init(_ cin: Int, _ cout: Int, stride: Int, workspace: Workspace) {
        conv1 = Conv2d(cin, cout, kernel: 3, stride: stride, padding: 1, bias: false, workspace: workspace)
        bn1 = BatchNorm2d(cout)
        conv2 = Conv2d(cout, cout, kernel: 3, padding: 1, bias: false, workspace: workspace)
        bn2 = BatchNorm2d(cout)
        downsample = stride != 1 || cin != cout
            ? (Conv2d(cin, cout, kernel: 1, stride: stride, bias: false, workspace: workspace), BatchNorm2d(cout)) : nil
    }

    var convs: [Conv2d] { [conv1, conv2] + (downsample.map { [$0.conv] } ?? []) }
    var batchNorms: [BatchNorm2d] { [bn1, bn2] + (downsample.map { [$0.bn] } ?? []) }

    func collectState(prefix: String, into state: inout [(String, StateEntry)]) {
        conv1.collectState(prefix: join(prefix, "conv1"), into: &state)
        bn1.collectState(prefix: join(prefix, "bn1"), into: &state)
        conv2.collectState(prefix: join(prefix, "conv2"), into: &state)
        bn2.collectState(prefix: join(prefix, "bn2"), into: &state)
        if let ds = downsample {
            ds.conv.collectState(prefix: join(prefix, "downsample.0"), into: &state)
            ds.bn.collectState(prefix: join(prefix, "downsample.1"), into: &state)
        }
    }

    func forward(_ x: Tensor, training: Bool) -> Tensor {
        guard training else {
            let shortcut = downsample.map { $0.conv.forward(x, epilogue: Epilogue(batchNorm: $0.bn)) } ?? x
            let y = conv1.forward(x, epilogue: Epilogue(batchNorm: bn1, relu: true))
            return conv2.forward(y, epilogue: Epilogue(batchNorm: bn2, residual: shortcut, relu: true))
        }
        var y = relu1.forward(bn1.forward(conv1.forward(x, training: training), training: training), training: training)
        y = bn2.forward(conv2.forward(y, training: training), training: training)
        let shortcut = downsample.map { $0.bn.forward($0.conv.forward(x, training: training), training: training) } ?? x
        let s = sum.get(y.shape)
        add(y, shortcut, into: s)
        return relu.forward(s, training: training)
    }

    func backward(_ dy: Tensor, _ done: (any Layer) -> Void) -> Tensor {
        let ds = relu.backward(dy)
        // The shortcut branch goes first so that its gradient is final before the main branch
        // reuses any buffer; it does not modify `ds`.
        let dShortcut: Tensor
        if let (conv, bn) = downsample {
            let d = bn.backward(ds)
            done(bn)
            dShortcut = conv.backward(d)
            done(conv)
        } else {
            dShortcut = ds
        }
        var d = bn2.backward(ds)
        done(bn2)
        d = conv2.backward(d)
        done(conv2)
        d = relu1.backward(d)
        d = bn1.backward(d)
        done(bn1)
        d = conv1.backward(d)
        done(conv1)
        let out = dx.get(d.shape)
        add(d, dShortcut, into: out)
        return out
    }
}
