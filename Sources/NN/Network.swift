/// A network with an explicit forward and backward over preallocated buffers.
///
/// `forward` maps an input batch [N, C, H, W] to the raw network output [N, 1, H, W] (the
/// tensor is owned by the network and reused by the next call). `backward` takes d(loss)/d(output),
/// accumulates into `parameters.grads` (call `parameters.zeroGrad()` first) and calls
/// `gradientReady` for each parameter as soon as its gradient is final, in backward order, so a
/// caller can start reducing finished gradients while backward goes on.
public protocol Network: StateModule {
    var config: ModelConfig { get }
    var parameters: ParameterSet { get }
    var gradientReady: ((Int) -> Void)? { get set }   // argument: index into `parameters.parameters`
    /// Every BatchNorm layer, for synchronizing their statistics across processes.
    var batchNorms: [BatchNorm2d] { get }
    func forward(_ x: Tensor, training: Bool) -> Tensor
    func backward(_ dy: Tensor)
}
