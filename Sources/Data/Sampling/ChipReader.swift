import Primitives

/// Fills caller-provided buffers with one training or validation chip: inputs [C×H×W] in the run's
/// band order, target [H×W] and mask [H×W] (1 where the pixel is usable, see `WindowPlanes`),
/// flips, rotation and ortho swap applied to every band, target and mask alike. Nodata never reaches the buffers: `asp_dsm` holes hold the chip's
/// mean valid height, other inputs and the target hold 0; the ortho bands are standardized as
/// `orthoStandardization` says (`NodataFill`). One reader per thread.
public final class ChipReader {
    public let scenes: [Scene]
    public let chipSize: Int
    private let planes: [WindowPlanes]
    private let fill: NodataFill

    public init(scenes: [Scene], chipSize: Int, orthoStandardization: OrthoStandardization = .none) {
        precondition(!scenes.isEmpty && chipSize > 0, "a reader needs scenes and a chip size")
        precondition(Set(scenes.map { $0.bands }).count == 1, "every scene must have the run's bands")
        self.scenes = scenes
        self.chipSize = chipSize
        planes = scenes.map { WindowPlanes(scene: $0) }
        fill = NodataFill(bands: scenes[0].bands, orthos: orthoStandardization)
    }

    public var channels: Int { scenes[0].bands.count }

    /// Reads `chip`. `inputs` holds `channels·chipSize²` floats, `target` and `mask` `chipSize²`;
    /// pass nil for `target` to read inputs and mask only (the mask then ignores the target).
    public func read(_ chip: ChipPlacement, inputs: UnsafeMutablePointer<Float>, target: UnsafeMutablePointer<Float>?,
                     mask: UnsafeMutablePointer<Float>) throws {
        let window = planes[chip.scene]
        let size = chipSize
        try window.load(x: chip.x, y: chip.y, width: size, height: size, withTarget: target != nil)
        window.fillInvalid(fill)
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
                var i = ChipReader.rowStart(chip, y, size), out = mask + y &* size
                let step = ChipReader.rowStep(chip, size)
                for _ in 0..<size {
                    out.pointee = v[i] != 0 ? 1 : 0
                    out += 1
                    i &+= step
                }
            }
        }
    }

    private static func copy(_ source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>, size: Int, chip: ChipPlacement) {
        let step = rowStep(chip, size)
        for y in 0..<size {
            let start = rowStart(chip, y, size), to = destination + y &* size
            if step == 1 {
                to.update(from: source + start, count: size)
            } else {
                var i = start
                for x in 0..<size {
                    to[x] = source[i]
                    i &+= step
                }
            }
        }
    }

    /// The window offset that output pixel (y, x) of a square chip shows: the flips, then
    /// `rotation` quarter turns counterclockwise. Every output row walks a straight line of the
    /// window (a row or a column, either way), so a row is its start and one step.
    static func source(_ chip: ChipPlacement, _ y: Int, _ x: Int, _ size: Int) -> Int {
        let last = size &- 1
        var (r, c) = (y, x)
        switch chip.rotation & 3 {
        case 1: (r, c) = (x, last &- y)
        case 2: (r, c) = (last &- y, last &- x)
        case 3: (r, c) = (last &- x, y)
        default: break
        }
        if chip.flipVertical { r = last &- r }
        if chip.flipHorizontal { c = last &- c }
        return r &* size &+ c
    }

    static func rowStart(_ chip: ChipPlacement, _ y: Int, _ size: Int) -> Int { source(chip, y, 0, size) }

    static func rowStep(_ chip: ChipPlacement, _ size: Int) -> Int {
        size > 1 ? source(chip, 0, 1, size) &- source(chip, 0, 0, size) : 1
    }
}
