/// Scratch memory shared by the layers of one network (im2col columns, padded copies and the
/// like). Layers run one at a time, so a few buffers of the largest size serve them all.
public final class Workspace {
    /// What a buffer holds. Each slot's buffer serves every layer in turn; the buffers one layer
    /// uses at the same time are in different slots, whatever the number of workers (numbered
    /// slots had a 25th worker's plane land on the first worker's transformed input).
    enum Slot: Hashable {
        /// A GEMM's operand made from the input: im2col columns, Winograd's transformed input V (and
        /// dV, once V is spent), a transposed convolution's images packed side by side.
        case operand
        /// A GEMM's output: several images' products before they go back to NCHW, Winograd's M (and dM).
        case product
        /// Winograd's transformed weights U, and the gradient dU that the weight gradient sums.
        case transformedWeights, transformedWeightGradient
        /// NarrowConv's zero-bordered input and output gradient, and its kernels turned by 180°.
        case borderedInput, borderedGradient, turnedWeights
        /// Each worker's own: a padded plane, and the operand and product of the passes, bands or
        /// images it takes whole.
        case plane(Int), workerOperand(Int), workerProduct(Int)
    }

    private var slots: [Slot: (pointer: UnsafeMutablePointer<Float>, capacity: Int)] = [:]

    public init() {}

    deinit { for s in slots.values { UnsafeMutableRawPointer(s.pointer).deallocate() } }

    /// At least `count` floats, contents undefined; valid until the next call for the same slot.
    /// Called between parallel regions, never inside one.
    func buffer(_ count: Int, _ slot: Slot) -> UnsafeMutablePointer<Float> {
        if let s = slots[slot], s.capacity >= count { return s.pointer }
        if let s = slots[slot] { UnsafeMutableRawPointer(s.pointer).deallocate() }
        let n = max(count, 16)
        let p = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64).bindMemory(to: Float.self, capacity: n)
        slots[slot] = (p, n)
        return p
    }
}
