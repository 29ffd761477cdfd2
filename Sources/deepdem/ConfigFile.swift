import Foundation
import NN
import Yams

/// A YAML or JSON configuration file's top-level mapping, in JSONSerialization's types.
func readConfigMapping(_ path: String) throws -> [String: Any] {
    let file = try InputFile(path)
    guard file.size <= YAMLLimits.maxFileBytes else {
        throw CLIError("\(path): \(file.size) bytes; a configuration file may have at most \(YAMLLimits.maxFileBytes)")
    }
    guard let text = String(data: try file.read(at: 0, count: file.size), encoding: .utf8) else {
        throw CLIError("\(path): not a text file (UTF-8 YAML or JSON)")
    }
    try YAMLLimits.check(text, source: path)
    let parsed: Any?
    do { parsed = try Yams.load(yaml: text) } catch { throw CLIError("\(path): not valid YAML or JSON: \(error)") }
    guard let mapping = plain(parsed) as? [String: Any] else {
        throw CLIError("\(path): the configuration must be a mapping of keys to values")
    }
    return mapping
}

/// YAML's values as JSONSerialization's (string keys, NSNull for null).
func plain(_ value: Any?) -> Any? {
    switch value {
    case let m as [AnyHashable: Any]:
        var out: [String: Any] = [:]
        for (k, v) in m { out["\(k)"] = plain(v) ?? NSNull() }
        return out
    case let a as [Any]:
        return a.map { plain($0) ?? NSNull() }
    case nil:
        return nil
    default:
        return value
    }
}
