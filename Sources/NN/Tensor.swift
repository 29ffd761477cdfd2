import Foundation

/// Zero-filled, 64-byte aligned floats that tensors view; freed with the last tensor that uses them.
final class Storage {
    let data: UnsafeMutablePointer<Float>
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        data = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(capacity, 1))
        data.initialize(repeating: 0, count: max(capacity, 1))
    }

    deinit { UnsafeMutableRawPointer(data).deallocate() }
}

/// A contiguous Float32 array with an NCHW (or any) shape.
///
/// A tensor either owns its memory (64-byte aligned, zero-filled) or views a slice of a larger
/// buffer it does not own: parameters and gradients are views into one flat buffer so that the
/// optimizer and the gradient all-reduce work on a single array.
public final class Tensor {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    /// The memory this tensor keeps alive; nil for views of memory someone else owns.
    private let storage: Storage?

    public init(_ shape: [Int]) {
        self.shape = shape
        count = shape.reduce(1, *)
        let s = Storage(capacity: count)
        storage = s
        data = s.data
    }

    /// A view of `count(shape)` floats at `data`; the caller keeps that memory alive.
    public init(_ shape: [Int], viewing data: UnsafeMutablePointer<Float>) {
        self.shape = shape
        count = shape.reduce(1, *)
        self.data = data
        storage = nil
    }

    /// The first `count(shape)` floats of `storage`, kept alive by this tensor.
    init(_ shape: [Int], storage: Storage) {
        self.shape = shape
        count = shape.reduce(1, *)
        precondition(count <= storage.capacity, "Tensor: \(shape) does not fit \(storage.capacity) floats")
        data = storage.data
        self.storage = storage
    }

    public convenience init(_ shape: [Int], _ values: [Float]) {
        self.init(shape)
        precondition(values.count == count, "Tensor: \(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
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

/// A preallocated tensor, which is how layers keep their activations across steps without
/// allocating in the training loop. A new shape that fits the memory already held reuses it (a
/// refinement's last, smaller batch of a row does not reallocate every layer's output twice per row).
struct Slot {
    private(set) var tensor: Tensor?
    private var storage: Storage?

    mutating func get(_ shape: [Int]) -> Tensor {
        if let t = tensor, t.shape == shape { return t }
        let count = shape.reduce(1, *)
        if storage.map({ $0.capacity < count }) ?? true { storage = Storage(capacity: count) }
        let t = Tensor(shape, storage: storage!)
        tensor = t
        return t
    }

    /// For an inference pass: the slot's own memory when it has some (a network that trains and
    /// validates keeps one set of activations), else a tensor from `TensorPool`, which the slot
    /// does not hold, so that a network that only infers keeps only what is live.
    mutating func transient(_ shape: [Int]) -> Tensor {
        storage == nil ? TensorPool.shared.tensor(shape) : get(shape)
    }
}

/// Memory for tensors that live only as long as someone holds them: gradients flowing backward
/// through the layers, and activations of inference passes. A storage whose only owner is the pool
/// is free; the smallest free one that fits is reused. After the first step or batch the pool
/// holds about the largest set of such tensors alive at once, instead of one buffer per layer.
final class TensorPool: @unchecked Sendable {
    static let shared = TensorPool()
    private var storages: [Storage] = []
    private let lock = NSLock()

    /// A tensor of `shape`, contents undefined.
    func tensor(_ shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        lock.lock()
        defer { lock.unlock() }
        var best = -1
        for i in storages.indices where storages[i].capacity >= count
            && (best < 0 || storages[i].capacity < storages[best].capacity) && isKnownUniquelyReferenced(&storages[i]) {
            best = i
        }
        if best < 0 {
            storages.append(Storage(capacity: count))
            best = storages.count - 1
        }
        return Tensor(shape, storage: storages[best])
    }
}
