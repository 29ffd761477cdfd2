/// A residual block of a ResNet stage (BasicBlock or Bottleneck), as the encoder drives it.
protocol ResNetBlock: StateModule {
    /// In the order initialization draws them.
    var convs: [Conv2d] { get }
    var batchNorms: [BatchNorm2d] { get }
    func forward(_ x: Tensor, training: Bool) -> Tensor
    /// Calls `done` for each layer whose parameter gradients are final, in backward order.
    func backward(_ dy: Tensor, _ done: (any Layer) -> Void) -> Tensor
}

/// The torchvision ResNets smp's `Unet` takes as encoders: a 64-channel stem, then four stages of
/// `blockCounts` blocks at widths 64…512, the first block of stages 2–4 halving the resolution.
struct ResNetEncoder {
    let blockCounts: [Int]
    let bottleneck: Bool

    static let named = [
        "resnet18": ResNetEncoder(blockCounts: [2, 2, 2, 2], bottleneck: false),
        "resnet34": ResNetEncoder(blockCounts: [3, 4, 6, 3], bottleneck: false),
        "resnet50": ResNetEncoder(blockCounts: [3, 4, 6, 3], bottleneck: true),
    ]
    static let stemChannels = 64
    static let stageWidths = [64, 128, 256, 512]

    /// Channels of the features f1 (the stem's) … f5 (the last stage's).
    var featureChannels: [Int] {
        [Self.stemChannels] + Self.stageWidths.map { bottleneck ? $0 * Bottleneck.expansion : $0 }
    }

    func block(_ cin: Int, width: Int, stride: Int, workspace: Workspace) -> any ResNetBlock {
        bottleneck ? Bottleneck(cin, width: width, stride: stride, workspace: workspace)
                   : BasicBlock(cin, width, stride: stride, workspace: workspace)
    }
}
