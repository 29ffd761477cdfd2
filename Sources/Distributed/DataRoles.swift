import Data
import Foundation

/// `data:` — a scene folder or a list of them (held out by `train_split` or `split`), or roles:
/// `{train: [...], val: [...], test: [...]}`, whole scenes for each role (val and test optional).
public enum DataSetting: Codable, Equatable, Sendable, ExpressibleByArrayLiteral {
    case folders([String])
    case roles(DataRoles)

    public init(arrayLiteral folders: String...) { self = .folders(folders) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(String.self) { self = .folders([one]); return }
        if let list = try? c.decode([String].self) { self = .folders(list); return }
        self = .roles(try DataRoles(from: decoder))
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .folders(let list): var c = encoder.singleValueContainer(); try c.encode(list)
        case .roles(let roles): try roles.encode(to: encoder)
        }
    }

    /// The scenes opened when training starts, in the order chips name them: every folder of a
    /// list; the training, then the validation scenes of roles. Test scenes are not among them.
    public var opened: [String] {
        switch self {
        case .folders(let list): return list
        case .roles(let r): return r.train + r.val
        }
    }

    /// Whole scenes that only the test phase opens.
    public var testScenes: [String] {
        if case .roles(let r) = self { return r.test }
        return []
    }

    public var roles: DataRoles? {
        if case .roles(let r) = self { return r }
        return nil
    }
}

public struct DataRoles: Codable, Equatable, Sendable {
    public var train: [String]
    public var val: [String] = []
    public var test: [String] = []

    public init(train: [String], val: [String] = [], test: [String] = []) {
        self.train = train
        self.val = val
        self.test = test
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case train, val, test
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func folders(_ key: CodingKeys) throws -> [String]? {
            guard c.contains(key) else { return nil }
            let list = try (try? c.decode(String.self, forKey: key)).map { [$0] } ?? c.decode([String].self, forKey: key)
            guard !list.isEmpty else { throw ConfigError("'data.\(key.rawValue)' lists no scene: name at least one scene folder") }
            return list
        }
        guard let train = try folders(.train) else {
            throw ConfigError("'data.train' is missing: data roles need at least one training scene")
        }
        self.train = train
        val = try folders(.val) ?? []
        test = try folders(.test) ?? []
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(train, forKey: .train)
        if !val.isEmpty { try c.encode(val, forKey: .val) }
        if !test.isEmpty { try c.encode(test, forKey: .test) }
    }

    /// The first scene named by two roles (folders compared after `..` and symlinks are resolved).
    var shared: (folder: String, roles: (String, String))? {
        let named = [("train", train), ("val", val), ("test", test)]
        var seen: [String: String] = [:]
        for (role, list) in named {
            var mine = Set<String>()
            for folder in list {
                let key = URL(fileURLWithPath: folder).standardized.resolvingSymlinksInPath().path
                if let other = seen[key], !mine.contains(key) { return (folder, (other, role)) }
                seen[key] = seen[key] ?? role
                mine.insert(key)
            }
        }
        return nil
    }
}

/// `split:` — ResDepth's stripes: every scene of a data list cut into `stripes` equal stripes
/// along `axis`; stripe `val` validates, stripe `test` (optional) is the test region, the rest
/// trains, each rotated by `fold` (README, Training).
public struct StripeSplit: Codable, Equatable, Sendable {
    public var stripes: Int
    public var axis = "x"
    public var val: Int
    public var test: Int?

    public init(stripes: Int, axis: String = "x", val: Int, test: Int? = nil) {
        self.stripes = stripes
        self.axis = axis
        self.val = val
        self.test = test
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case stripes, axis, val, test
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        guard c.contains(.stripes), c.contains(.val) else {
            throw ConfigError("'split' needs 'stripes' and 'val' (e.g. {stripes: 5, axis: x, val: 3, test: 4})")
        }
        stripes = try c.decode(Int.self, forKey: .stripes)
        axis = try c.decodeIfPresent(String.self, forKey: .axis) ?? axis
        val = try c.decode(Int.self, forKey: .val)
        test = try c.decodeIfPresent(Int.self, forKey: .test)
    }

    /// The validation and test stripes of fold `fold`.
    public func rotated(by fold: Int) -> (val: Int, test: Int?) {
        ((val + fold) % stripes, test.map { ($0 + fold) % stripes })
    }

    func check(fold: Int) throws {
        guard (2...10_000).contains(stripes) else { throw ConfigError("'split.stripes' is \(stripes); it must be between 2 and 10000") }
        guard SceneRegions.Axis(rawValue: axis) != nil else { throw ConfigError("'split.axis' is '\(axis)'; it must be x or y") }
        for (key, value) in [("val", val), ("test", test)] {
            if let value, !(0..<stripes).contains(value) {
                throw ConfigError("'split.\(key)' is \(value); it must be a stripe between 0 and \(stripes - 1)")
            }
        }
        if test == val { throw ConfigError("'split.val' and 'split.test' are both stripe \(val): give each its own stripe") }
        guard (0..<stripes).contains(fold) else {
            throw ConfigError("'fold' is \(fold); it must be between 0 and \(stripes - 1) (split.stripes \(stripes))")
        }
    }

    /// Each role's rectangles in a `width`×`height` scene for fold `fold`; training gives up
    /// half a chip beside each held-out stripe.
    func regions(fold: Int, width: Int, height: Int, chipSize: Int) -> SceneRegions {
        let (v, t) = rotated(by: fold)
        return SceneRegions.stripes(count: stripes, axis: SceneRegions.Axis(rawValue: axis)!, validation: v, test: t,
                                    width: width, height: height, margin: chipSize / 2)
    }
}
