/// torchvision's ResNet Bottleneck (v1.5, the stride on the 3×3):
/// relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)), with conv1 1×1 to `width`,
/// conv2 3×3/stride, conv3 1×1 to `expansion`·width; the shortcut is `downsample` (conv1×1/stride
/// + BN) when the shape changes, else the identity. Public so that tests can check its gradients alone.
public final class Bottleneck: ResNetBlock {
    static let expansion = 4
    let conv1: Conv2d, bn1: BatchNorm2d, relu1 = ReLU()
    let conv2: Conv2d, bn2: BatchNorm2d, relu2 = ReLU()
    let conv3: Conv2d, bn3: BatchNorm2d
    let downsample: (conv: Conv2d, bn: BatchNorm2d)?
    let relu = ReLU()
    private var sum = Slot(), dx = Slot()

    public init(_ cin: Int, width: Int, stride: Int, workspace: Workspace) {
        let cout = width * Self.expansion
        conv1 = Conv2d(cin, width, kernel: 1, bias: false, workspace: workspace)
        bn1 = BatchNorm2d(width)
        conv2 = Conv2d(width, width, kernel: 3, stride: stride, padding: 1, bias: false, workspace: workspace)
        bn2 = BatchNorm2d(width)
        conv3 = Conv2d(width, cout, kernel: 1, bias: false, workspace: workspace)
        bn3 = BatchNorm2d(cout)
        downsample = stride != 1 || cin != cout
            ? (Conv2d(cin, cout, kernel: 1, stride: stride, bias: false, workspace: workspace), BatchNorm2d(cout)) : nil
    }

    var convs: [Conv2d] { [conv1, conv2, conv3] + (downsample.map { [$0.conv] } ?? []) }
    var batchNorms: [BatchNorm2d] { [bn1, bn2, bn3] + (downsample.map { [$0.bn] } ?? []) }

    public func collectState(prefix: String, into state: inout [(String, StateEntry)]) {
        conv1.collectState(prefix: join(prefix, "conv1"), into: &state)
        bn1.collectState(prefix: join(prefix, "bn1"), into: &state)
        conv2.collectState(prefix: join(prefix, "conv2"), into: &state)
        bn2.collectState(prefix: join(prefix, "bn2"), into: &state)
        conv3.collectState(prefix: join(prefix, "conv3"), into: &state)
        bn3.collectState(prefix: join(prefix, "bn3"), into: &state)
        if let ds = downsample {
            ds.conv.collectState(prefix: join(prefix, "downsample.0"), into: &state)
            ds.bn.collectState(prefix: join(prefix, "downsample.1"), into: &state)
        }
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        guard training else {
            let shortcut = downsample.map { $0.conv.forward(x, epilogue: Epilogue(batchNorm: $0.bn)) } ?? x
            var y = conv1.forward(x, epilogue: Epilogue(batchNorm: bn1, relu: true))
            y = conv2.forward(y, epilogue: Epilogue(batchNorm: bn2, relu: true))
            return conv3.forward(y, epilogue: Epilogue(batchNorm: bn3, residual: shortcut, relu: true))
        }
        var y = relu1.forward(bn1.forward(conv1.forward(x, training: true), training: true), training: true)
        y = relu2.forward(bn2.forward(conv2.forward(y, training: true), training: true), training: true)
        y = bn3.forward(conv3.forward(y, training: true), training: true)
        let shortcut = downsample.map { $0.bn.forward($0.conv.forward(x, training: true), training: true) } ?? x
        let s = sum.get(y.shape)
        add(y, shortcut, into: s)
        return relu.forward(s, training: true)
    }

    public func backward(_ dy: Tensor, _ done: (any Layer) -> Void) -> Tensor {
        let ds = relu.backward(dy)
        // As in BasicBlock: the shortcut's gradient is final before the main branch runs.
        let dShortcut: Tensor
        if let (conv, bn) = downsample {
            let d = bn.backward(ds)
            done(bn)
            dShortcut = conv.backward(d)
            done(conv)
        } else {
            dShortcut = ds
        }
        var d = bn3.backward(ds)
        done(bn3)
        d = conv3.backward(d)
        done(conv3)
        d = relu2.backward(d)
        d = bn2.backward(d)
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
