/// How the ortho bands (those named `ortho_*`) of each chip or tile are standardized before the
/// network sees them: a model setting (`ortho_standardization` in a checkpoint's `deepdem`
/// metadata and in the training configuration), applied where nodata is filled (Data's
/// `NodataFill`), so training chips and refined tiles are standardized alike.
///
/// Spelled `"none"` (also what an absent key means), `"tile"`, or `{"mean": m, "std": s}` with
/// `m` a number or null.
public enum OrthoStandardization: Codable, Equatable, Sendable, CustomStringConvertible {
    /// The bands as they are.
    case none
    /// Each ortho band of each chip to zero mean and unit standard deviation over its valid pixels.
    case tile
    /// ResDepth's dataset normalization, (x − mean)/std on every ortho band with its training set's
    /// mean and std; a nil mean centres each chip on the mean of all its ortho bands' valid pixels.
    case fixed(mean: Double?, std: Double)

    /// The configuration key.
    public static let key = "ortho_standardization"

    private enum Keys: String, CodingKey, CaseIterable { case mean, std }

    private struct AnyKey: CodingKey {
        let stringValue: String
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        if let c = try? decoder.singleValueContainer(), let name = try? c.decode(String.self) {
            switch name {
            case "none": self = .none
            case "tile": self = .tile
            default:
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "is '\(name)'; it must be none, tile or {mean: M, std: S}")
            }
            return
        }
        let c: KeyedDecodingContainer<Keys>
        do {
            c = try decoder.container(keyedBy: Keys.self)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "must be none, tile or {mean: M, std: S}"))
        }
        let fail = { (text: String) in DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: text)) }
        for key in try decoder.container(keyedBy: AnyKey.self).allKeys where Keys(stringValue: key.stringValue) == nil {
            throw fail("unknown key '\(key.stringValue)' (known: mean, std)")
        }
        guard let std = try c.decodeIfPresent(Double.self, forKey: .std) else { throw fail("needs 'std' beside 'mean'") }
        let mean = try c.decodeIfPresent(Double.self, forKey: .mean)
        guard std.isFinite, std > 0 else { throw fail("has std \(std); it must be positive and finite") }
        if let mean, !mean.isFinite { throw fail("has mean \(mean); it must be finite or null") }
        self = .fixed(mean: mean, std: std)
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .none:
            var c = encoder.singleValueContainer()
            try c.encode("none")
        case .tile:
            var c = encoder.singleValueContainer()
            try c.encode("tile")
        case .fixed(let mean, let std):
            var c = encoder.container(keyedBy: Keys.self)
            // null, not absent: ResDepth's normalization file says None for per-chip centring.
            if let mean { try c.encode(mean, forKey: .mean) } else { try c.encodeNil(forKey: .mean) }
            try c.encode(std, forKey: .std)
        }
    }

    public var description: String {
        switch self {
        case .none: return "none"
        case .tile: return "tile"
        case .fixed(let mean, let std): return "mean \(mean.map { "\($0)" } ?? "per chip"), std \(std)"
        }
    }

    /// Whether `band` is one of the bands this standardizes.
    public static func applies(to band: String) -> Bool { band.hasPrefix("ortho_") }
}
