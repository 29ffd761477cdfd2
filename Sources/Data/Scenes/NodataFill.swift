/// How nodata becomes numbers the network can take, one rule for training chips
/// (`WindowPlanes.fillInvalid`, which `ChipReader` applies) and inference tiles (`Tiler`): a model
/// refines what it was trained on only while both fill alike. `asp_dsm` (channel 0) holes take
/// the mean of the window's valid heights (0 when it has none), every other channel's take 0.
enum NodataFill {
    /// Fills plane `channel` of a window's inputs, in the run's band order.
    static func input(_ plane: UnsafeMutableBufferPointer<Float>, channel: Int) {
        replaceNaN(in: plane, by: channel == 0 ? meanOfValid(plane) : 0)
    }

    /// The target's holes are masked out of the loss; 0 only keeps them finite.
    static func target(_ plane: UnsafeMutableBufferPointer<Float>) {
        replaceNaN(in: plane, by: 0)
    }

    private static func meanOfValid(_ plane: UnsafeMutableBufferPointer<Float>) -> Float {
        var sum = 0.0
        var valid = 0
        for value in plane where !value.isNaN { sum += Double(value); valid &+= 1 }
        return valid > 0 ? Float(sum / Double(valid)) : 0
    }

    private static func replaceNaN(in plane: UnsafeMutableBufferPointer<Float>, by value: Float) {
        for i in plane.indices where plane[i].isNaN { plane[i] = value }
    }
}
