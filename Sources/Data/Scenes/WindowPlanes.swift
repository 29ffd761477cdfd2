/// Scratch planes for reading one window of every band a scene uses, and the rule that makes a
/// pixel usable: every input valid, the target valid (when read) and `nodata_mask` ≥ 0.5 (when the
/// scene has it). One per thread; sized for the largest window asked for.
final class WindowPlanes {
    let scene: Scene
    private(set) var inputs: [[Float]]
    private(set) var target: [Float]
    private(set) var nodataMask: [Float]
    private(set) var valid: [UInt8]
    private(set) var width = 0
    private(set) var height = 0
    private let maskIsInput: Int?

    init(scene: Scene) {
        self.scene = scene
        inputs = Array(repeating: [], count: scene.bands.count)
        target = []
        nodataMask = []
        valid = []
        maskIsInput = scene.bands.firstIndex(of: Band.nodataMask)
    }

    var count: Int { width &* height }

    /// Reads the window and computes `valid`; the target only when `withTarget`.
    func load(x: Int, y: Int, width: Int, height: Int, withTarget: Bool) throws {
        let n = width * height
        self.width = width
        self.height = height
        if valid.count < n { valid = [UInt8](repeating: 0, count: n) }
        for c in 0..<inputs.count {
            if inputs[c].count < n { inputs[c] = [Float](repeating: 0, count: n) }
            try inputs[c].withUnsafeMutableBufferPointer {
                try scene.inputs[c].read(x: x, y: y, width: width, height: height, into: $0.baseAddress!)
            }
        }
        if withTarget, let raster = scene.targetRaster {
            if target.count < n { target = [Float](repeating: 0, count: n) }
            try target.withUnsafeMutableBufferPointer {
                try raster.read(x: x, y: y, width: width, height: height, into: $0.baseAddress!)
            }
        }
        if maskIsInput == nil, let raster = scene.nodataMask {
            if nodataMask.count < n { nodataMask = [Float](repeating: 0, count: n) }
            try nodataMask.withUnsafeMutableBufferPointer {
                try raster.read(x: x, y: y, width: width, height: height, into: $0.baseAddress!)
            }
        }
        computeValid(n: n, withTarget: withTarget && scene.targetRaster != nil)
    }

    private func computeValid(n: Int, withTarget: Bool) {
        valid.withUnsafeMutableBufferPointer { v in
            for i in 0..<n { v[i] = 1 }
            for c in 0..<inputs.count {
                inputs[c].withUnsafeBufferPointer { p in
                    for i in 0..<n where p[i].isNaN { v[i] = 0 }
                }
            }
            if withTarget {
                target.withUnsafeBufferPointer { p in
                    for i in 0..<n where p[i].isNaN { v[i] = 0 }
                }
            }
            if scene.nodataMask != nil {
                let plane = maskIsInput.map { inputs[$0] } ?? nodataMask
                plane.withUnsafeBufferPointer { p in
                    for i in 0..<n where !(p[i] >= 0.5) { v[i] = 0 }
                }
            }
        }
    }

    /// Replaces the window's nodata by `fill`'s rule.
    func fillInvalid(_ fill: NodataFill) {
        let n = count
        fill.inputs { c, body in
            inputs[c].withUnsafeMutableBufferPointer { body(UnsafeMutableBufferPointer(rebasing: $0[..<n])) }
        }
        if !target.isEmpty {
            target.withUnsafeMutableBufferPointer {
                NodataFill.target(UnsafeMutableBufferPointer(rebasing: $0[..<min(n, $0.count)]))
            }
        }
    }
}
