/// A layer with an explicit forward and backward over preallocated buffers (llm.c style).
///
/// `forward` returns a tensor the layer owns (reused by the next call of the same shape) and
/// keeps what backward needs. `backward` takes d(loss)/d(output), accumulates into the layer's
/// parameter gradients and returns d(loss)/d(input), again a tensor the layer owns (or, for
/// layers that work in place, the tensor it was given).
public protocol Layer: StateModule {
    var parameterList: [Parameter] { get }
    func forward(_ x: Tensor, training: Bool) -> Tensor
    func backward(_ dy: Tensor) -> Tensor
}

/// Scratch memory shared by the layers of one network (im2col columns and the like). Layers run
/// one at a time, so one buffer of the largest size serves them all.
public final class Workspace {
    private var storage: UnsafeMutablePointer<Float>?
    private var capacity = 0

    public init() {}

    deinit { storage.map { UnsafeMutableRawPointer($0).deallocate() } }

    /// At least `count` floats, contents undefined; valid until the next call.
    func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity || storage == nil {
            storage.map { UnsafeMutableRawPointer($0).deallocate() }
            capacity = max(count, 1)
            storage = UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: capacity)
        }
        return storage!
    }
}
