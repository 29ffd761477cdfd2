/// ResDepth's `upconv(mode='bilinear')`: `nn.Sequential(nn.Upsample(mode='bilinear', scale_factor=2),
/// conv1x1)`, the 1×1 convolution biased and named `.1` (the upsampling has no state, `.0`).
final class BilinearUpConv: Layer {
    let upsample = BilinearUpsample(factor: 2)
    let conv: Conv2d

    init(_ cin: Int, _ cout: Int, workspace: Workspace) {
        conv = Conv2d(cin, cout, kernel: 1, bias: true, workspace: workspace)
    }

    var parameterList: [Parameter] { conv.parameterList }

    func collectState(prefix: String, into state: inout [(String, StateEntry)]) {
        conv.collectState(prefix: join(prefix, "1"), into: &state)
    }

    func forward(_ x: Tensor, training: Bool) -> Tensor {
        conv.forward(upsample.forward(x, training: training), training: training)
    }

    func backward(_ dy: Tensor) -> Tensor {
        upsample.backward(conv.backward(dy))
    }
}
