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

/// Scratch memory shared by the layers of one network (im2col columns, padded copies and the
/// like). Layers run one at a time, so a few buffers of the largest size serve them all; a
/// layer that needs several at once takes them from different slots.
public final class Workspace {
    private var slots: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []

    public init() {}

    deinit { for s in slots { UnsafeMutableRawPointer(s.pointer).deallocate() } }

    /// At least `count` floats, contents undefined; valid until the next call for the same slot.
    func buffer(_ count: Int, slot: Int = 0) -> UnsafeMutablePointer<Float> {
        while slots.count <= slot {
            slots.append((UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64).bindMemory(to: Float.self, capacity: 16), 16))
        }
        if count > slots[slot].capacity {
            UnsafeMutableRawPointer(slots[slot].pointer).deallocate()
            let p = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).bindMemory(to: Float.self, capacity: count)
            slots[slot] = (p, count)
        }
        return slots[slot].pointer
    }
}
