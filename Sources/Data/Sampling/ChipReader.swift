/// Fills caller-provided buffers with one training or validation chip: inputs [C×H×W] in the run's
/// band order, target [H×W] and mask [H×W] (1 where the pixel is usable, see `WindowPlanes`),
/// flips and ortho swap applied. Nodata never reaches the buffers: `asp_dsm` holes hold the chip's
/// mean valid height, other inputs and the target hold 0. One reader per thread.
public final class ChipReader {
    public let scenes: [Scene]
    public let chipSize: Int
    private let planes: [WindowPlanes]

    public init(scenes: [Scene], chipSize: Int) {
        precondition(!scenes.isEmpty && chipSize > 0, "a reader needs scenes and a chip size")
        precondition(Set(scenes.map { $0.bands }).count == 1, "every scene must have the run's bands")
        self.scenes = scenes
        self.chipSize = chipSize
        planes = scenes.map { WindowPlanes(scene: $0) }
    }

    public var channels: Int { scenes[0].bands.count }

    /// Reads `chip`. `inputs` holds `channels·chipSize²` floats, `target` and `mask` `chipSize²`;
    /// pass nil for `target` to read inputs and mask only (the mask then ignores the target).
    public func read(_ chip: ChipPlacement, inputs: UnsafeMutablePointer<Float>, target: UnsafeMutablePointer<Float>?,
                     mask: UnsafeMutablePointer<Float>) throws {
        let window = planes[chip.scene]
        let size = chipSize
        try window.load(x: chip.x, y: chip.y, width: size, height: size, withTarget: target != nil)
        window.fillInvalid()
        var order = Array(0..<channels)
        if chip.swapOrthos, let (a, b) = scenes[chip.scene].orthoChannels { order.swapAt(a, b) }
        let plane = size &* size
        for c in 0..<channels {
            window.inputs[order[c]].withUnsafeBufferPointer {
                ChipReader.copy($0.baseAddress!, to: inputs + c &* plane, size: size, chip: chip)
            }
        }
        if let target {
            window.target.withUnsafeBufferPointer { ChipReader.copy($0.baseAddress!, to: target, size: size, chip: chip) }
        }
        window.valid.withUnsafeBufferPointer { v in
            for y in 0..<size {
                let sy = chip.flipVertical ? size &- 1 &- y : y
                for x in 0..<size {
                    let sx = chip.flipHorizontal ? size &- 1 &- x : x
                    mask[y &* size &+ x] = v[sy &* size &+ sx] != 0 ? 1 : 0
                }
            }
        }
    }

    private static func copy(_ source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>, size: Int, chip: ChipPlacement) {
        for y in 0..<size {
            let sy = chip.flipVertical ? size &- 1 &- y : y
            let from = source + sy &* size, to = destination + y &* size
            if chip.flipHorizontal {
                for x in 0..<size { to[x] = from[size &- 1 &- x] }
            } else {
                to.update(from: from, count: size)
            }
        }
    }
}
