/// A contiguous Float32 array with an NCHW (or any) shape.
///
/// A tensor either owns its memory (64-byte aligned, zero-filled) or views a slice of a larger
/// buffer it does not own: parameters and gradients are views into one flat buffer so that the
/// optimizer and the gradient all-reduce work on a single array.
public final class Tensor {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    private let owned: Bool

    public init(_ shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        data.initialize(repeating: 0, count: max(count, 1))
        owned = true
    }

    /// A view of `count(shape)` floats at `data`; the caller keeps that memory alive.
    public init(_ shape: [Int], viewing data: UnsafeMutablePointer<Float>) {
        self.shape = shape
        count = shape.reduce(1, *)
        self.data = data
        owned = false
    }

    public convenience init(_ shape: [Int], _ values: [Float]) {
        self.init(shape)
        precondition(values.count == count, "Tensor: \(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    deinit {
        if owned { UnsafeMutableRawPointer(data).deallocate() }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }
    public var array: [Float] { Array(buffer) }

    public func zero() { data.update(repeating: 0, count: count) }

    public func copy(from other: Tensor) {
        precondition(other.count == count, "Tensor.copy: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    // NCHW accessors; the layers index raw pointers, these are for tests and glue code.
    public var n: Int { shape[0] }
    public var c: Int { shape[1] }
    public var h: Int { shape[2] }
    public var w: Int { shape[3] }
}

/// A preallocated tensor that is reallocated only when the requested shape changes, which is
/// how layers keep their activations across steps without allocating in the training loop.
struct Slot {
    private(set) var tensor: Tensor?

    mutating func get(_ shape: [Int]) -> Tensor {
        if let t = tensor, t.shape == shape { return t }
        let t = Tensor(shape)
        tensor = t
        return t
    }
}
