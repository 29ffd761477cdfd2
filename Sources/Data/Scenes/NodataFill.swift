import Primitives

/// How nodata becomes numbers the network can take, one rule for training chips
/// (`WindowPlanes.fillInvalid`, which `ChipReader` applies) and inference tiles (`Tiler`): a model
/// refines what it was trained on only while both fill alike. `asp_dsm` (channel 0) holes take
/// the mean of the window's valid heights (0 when it has none), every other channel's take 0.
/// The ortho bands are first standardized over their valid pixels as the model's
/// `OrthoStandardization` says, so their holes are 0 in standardized units.
struct NodataFill {
    let bands: [String]
    let orthos: OrthoStandardization

    /// Fills the window's input planes, in the run's band order; `plane(c, body)` hands plane `c` to
    /// `body` (standardization with a per-chip mean needs every ortho plane before it changes one).
    func inputs(_ plane: (Int, (UnsafeMutableBufferPointer<Float>) -> Void) -> Void) {
        var chipMean: Double?
        if case .fixed(nil, _) = orthos {
            var sum = 0.0, valid = 0
            for c in bands.indices where OrthoStandardization.applies(to: bands[c]) {
                plane(c) { p in
                    let s = Self.validSum(p)
                    sum += s.sum
                    valid &+= s.count
                }
            }
            chipMean = valid > 0 ? sum / Double(valid) : 0
        }
        for c in bands.indices {
            plane(c) { p in
                if c == 0 {
                    Self.replaceNaN(in: p, by: Self.meanOfValid(p))
                    return
                }
                if OrthoStandardization.applies(to: bands[c]) { standardize(p, chipMean: chipMean) }
                Self.replaceNaN(in: p, by: 0)
            }
        }
    }

    /// The target's holes are masked out of the loss; 0 only keeps them finite.
    static func target(_ plane: UnsafeMutableBufferPointer<Float>) {
        replaceNaN(in: plane, by: 0)
    }

    /// One ortho plane's valid pixels, standardized; its nodata stays NaN.
    private func standardize(_ p: UnsafeMutableBufferPointer<Float>, chipMean: Double?) {
        switch orthos {
        case .none:
            return
        case .tile:
            let s = Self.validSum(p)
            guard s.count > 0 else { return }
            let mean = s.sum / Double(s.count)
            var squares = 0.0
            for v in p where !v.isNaN { squares += (Double(v) - mean) * (Double(v) - mean) }
            let std = (squares / Double(s.count)).squareRoot()
            // A constant band carries no contrast: all of it is the mean, 0.
            for i in p.indices where !p[i].isNaN { p[i] = std > 0 ? Float((Double(p[i]) - mean) / std) : 0 }
        case .fixed(let mean, let std):
            // In float32, as ResDepth's torchvision Normalize computes it.
            let m = Float(mean ?? chipMean ?? 0), s = Float(std)
            for i in p.indices where !p[i].isNaN { p[i] = (p[i] - m) / s }
        }
    }

    private static func validSum(_ plane: UnsafeMutableBufferPointer<Float>) -> (sum: Double, count: Int) {
        var sum = 0.0
        var valid = 0
        for value in plane where !value.isNaN { sum += Double(value); valid &+= 1 }
        return (sum, valid)
    }

    private static func meanOfValid(_ plane: UnsafeMutableBufferPointer<Float>) -> Float {
        let s = validSum(plane)
        return s.count > 0 ? Float(s.sum / Double(s.count)) : 0
    }

    private static func replaceNaN(in plane: UnsafeMutableBufferPointer<Float>, by value: Float) {
        for i in plane.indices where plane[i].isNaN { plane[i] = value }
    }
}
