/// The rectangles of one scene that each role of a run takes its pixels from (README, Training):
/// training and validation chips lie wholly inside one of their role's rectangles, and a test
/// region is refined and evaluated as a whole. A role a scene has no part in has no rectangle.
public struct SceneRegions: Equatable, Sendable {
    public var train: [PixelWindow]
    public var validation: [PixelWindow]
    public var test: [PixelWindow]

    public init(train: [PixelWindow] = [], validation: [PixelWindow] = [], test: [PixelWindow] = []) {
        self.train = train
        self.validation = validation
        self.test = test
    }

    public enum Axis: String, Sendable {
        case x, y
    }

    /// All of a `width`×`height` scene.
    public static func whole(width: Int, height: Int) -> PixelWindow {
        PixelWindow(x: 0, y: 0, width: width, height: height)
    }

    /// `train_split`: the left `split` of the columns (whole pixels, rounded down) trains, the rest
    /// validates. Chips of either side lie wholly on it, so none overlaps the other side.
    public static func trainSplit(_ split: Double, width: Int, height: Int) -> SceneRegions {
        let columns = min(width, max(0, Int((Double(width) * split).rounded(.down))))
        return SceneRegions(train: [PixelWindow(x: 0, y: 0, width: columns, height: height)],
                            validation: [PixelWindow(x: columns, y: 0, width: width - columns, height: height)])
    }

    /// Stripe `index` of `count` equal stripes of an extent of `length` pixels (the remainder is
    /// spread over the stripes, whole pixels, rounded down at each boundary).
    public static func stripe(_ index: Int, of count: Int, length: Int) -> Range<Int> {
        (index * length / count)..<((index + 1) * length / count)
    }

    /// ResDepth's stripes: the scene cut into `count` equal stripes along `axis` (x: side by side
    /// in columns); stripe `validation` validates, stripe `test` (if any) is the test region, the
    /// others train. Neighbouring training stripes make one rectangle, which gives up `margin`
    /// pixels on each side that borders a held-out stripe, so that no training chip comes closer
    /// than the margin to held-out pixels.
    public static func stripes(count: Int, axis: Axis, validation: Int, test: Int?, width: Int, height: Int,
                               margin: Int) -> SceneRegions {
        precondition(count > 0 && (0..<count).contains(validation) && (test.map { (0..<count).contains($0) } ?? true),
                     "stripes out of range")
        let length = axis == .x ? width : height
        func window(_ r: Range<Int>) -> PixelWindow {
            axis == .x ? PixelWindow(x: r.lowerBound, y: 0, width: r.count, height: height)
                       : PixelWindow(x: 0, y: r.lowerBound, width: width, height: r.count)
        }
        let heldOut = Set([validation] + (test.map { [$0] } ?? []))
        var train: [PixelWindow] = []
        var first = 0
        while first < count {
            guard !heldOut.contains(first) else { first += 1; continue }
            var last = first
            while last + 1 < count, !heldOut.contains(last + 1) { last += 1 }
            var low = stripe(first, of: count, length: length).lowerBound
            var high = stripe(last, of: count, length: length).upperBound
            if first > 0 { low += margin }
            if last < count - 1 { high -= margin }
            if high > low { train.append(window(low..<high)) }
            first = last + 1
        }
        return SceneRegions(train: train, validation: [window(stripe(validation, of: count, length: length))],
                            test: test.map { [window(stripe($0, of: count, length: length))] } ?? [])
    }
}
