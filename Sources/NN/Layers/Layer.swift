/// A layer with an explicit forward and backward over preallocated buffers (llm.c style).
///
/// `forward` returns a tensor that stays valid while the caller holds it; in training the layer
/// keeps it (and reuses it in the next call of the same shape) with what backward needs, in
/// inference it keeps nothing. `backward` takes d(loss)/d(output), accumulates into the layer's
/// parameter gradients and returns d(loss)/d(input): a tensor from `TensorPool` that is the
/// caller's while it holds it (or, for layers that work in place, the tensor it was given).
public protocol Layer: StateModule {
    var parameterList: [Parameter] { get }
    func forward(_ x: Tensor, training: Bool) -> Tensor
    func backward(_ dy: Tensor) -> Tensor
}
