/// The eight symmetries of the square (the dihedral group D4) acting on a square plane: an
/// optional transpose, then optional flips of the columns and the rows. Test-time augmentation
/// predicts each transformed tile and maps the prediction back with `inverse`.
public struct SquareSymmetry: Equatable, Sendable {
    public var transpose: Bool
    public var flipColumns: Bool
    public var flipRows: Bool

    public static let all: [SquareSymmetry] = [false, true].flatMap { t in
        [false, true].flatMap { fc in [false, true].map { fr in SquareSymmetry(transpose: t, flipColumns: fc, flipRows: fr) } }
    }

    public var isIdentity: Bool { !transpose && !flipColumns && !flipRows }

    /// out = g(plane): out[y, x] = plane[p(y, x)] with p undoing the flips, then the transpose.
    public func apply(_ plane: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, side s: Int) {
        for y in 0..<s {
            let fy = flipRows ? s &- 1 &- y : y
            for x in 0..<s {
                let fx = flipColumns ? s &- 1 &- x : x
                out[y &* s &+ x] = transpose ? plane[fx &* s &+ fy] : plane[fy &* s &+ fx]
            }
        }
    }

    /// out = g⁻¹(plane), so that inverse(apply(p)) == p.
    public func inverse(_ plane: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, side s: Int) {
        for y in 0..<s {
            for x in 0..<s {
                // (y, x) came from the transformed plane's (Y, X) = p⁻¹(y, x).
                let (ty, tx) = transpose ? (x, y) : (y, x)
                let sy = flipRows ? s &- 1 &- ty : ty, sx = flipColumns ? s &- 1 &- tx : tx
                out[y &* s &+ x] = plane[sy &* s &+ sx]
            }
        }
    }
}
