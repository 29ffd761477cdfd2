import Foundation

/// JSONDecoder keeps one of two equal keys in an object without a word, and which one is its
/// business; Python's json keeps the last. A header or metadata object that names a key twice
/// could then mean one thing to the tool that checked a file and another to the one that uses
/// it, so readers refuse such JSON instead (as the reference safetensors reader does).
enum DuplicateKeys {
    /// The path of keys down to the first key that appears twice in one object, or nil. `json`
    /// must already have parsed (JSONDecoder bounds its nesting), so only strings and brackets matter here.
    static func first(in json: Data) -> [String]? {
        json.withUnsafeBytes { raw -> [String]? in
            let bytes = raw.bindMemory(to: UInt8.self)
            // One entry per open object or array: the keys seen so far (nil for an array) and the
            // latest key, which names the value being read.
            var open: [(keys: Set<String>?, latest: String)] = []
            var i = 0
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: "{"): open.append((Set(), ""))
                case UInt8(ascii: "["): open.append((nil, ""))
                case UInt8(ascii: "}"), UInt8(ascii: "]"): _ = open.popLast()
                case UInt8(ascii: "\""):
                    let start = i
                    var escaped = false
                    i += 1
                    while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                        if bytes[i] == UInt8(ascii: "\\") { escaped = true; i += 1 }
                        i += 1
                    }
                    guard i < bytes.count else { return nil }
                    var next = i + 1
                    while next < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[next]) { next += 1 }
                    guard next < bytes.count, bytes[next] == UInt8(ascii: ":"), var keys = open.last?.keys else { break }
                    let token = Data(UnsafeRawBufferPointer(rebasing: raw[start...i]))
                    let key = escaped ? (try? JSONDecoder().decode([String].self, from: Data("[".utf8) + token + Data("]".utf8)))?.first ?? ""
                                      : String(decoding: token.dropFirst().dropLast(), as: UTF8.self)
                    guard keys.insert(key).inserted else { return open.dropLast().filter { $0.keys != nil }.map(\.latest) + [key] }
                    open[open.count - 1] = (keys, key)
                default: break
                }
                i += 1
            }
            return nil
        }
    }
}
