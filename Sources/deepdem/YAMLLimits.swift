// libyaml, which Yams is built on: its event parser keeps its own stacks, so it reads any
// nesting without recursing, and its events show anchors and aliases that Yams resolves silently.
import CYaml
import Foundation

/// Bounds on what a configuration (a file, or a flag's YAML value) may make Yams build. Yams
/// composes and constructs recursively, so deep nesting overflows the stack; aliases share
/// nodes while parsing but are copied when constructed, so a few lines of anchors ("billion
/// laughs") can expand without bound; and a key given twice in one mapping silently loses a value.
enum YAMLLimits {
    static let maxFileBytes = 4 << 20
    static let maxDepth = 64
    /// Values (scalars and collections) once every alias is expanded.
    static let maxNodes = 100_000

    /// Throws a `CLIError` naming `source` and the line when `text` breaks a limit. Text libyaml
    /// cannot parse passes: Yams then reports the syntax error itself.
    static func check(_ text: String, source: String) throws {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw CLIError("\(source): cannot start the YAML parser") }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        try bytes.withUnsafeMutableBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var walk = Walk(source: source)
            var event = yaml_event_t()
            while yaml_parser_parse(&parser, &event) == 1 {
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { return }
                try walk.take(event)
            }
        }
    }

    /// The state of one pass over the events.
    private struct Walk {
        struct Open {
            let isMapping: Bool
            let anchor: String?
            let nodesBefore: Int
            var height = 1
            var nextIsKey = true
            var keys: Set<String> = []
        }

        let source: String
        var open: [Open] = []
        var nodes = 0
        /// Each anchor's expanded size and height, for its aliases.
        var anchors: [String: (nodes: Int, height: Int)] = [:]

        init(source: String) { self.source = source }

        mutating func take(_ event: yaml_event_t) throws {
            let line = event.start_mark.line + 1
            switch event.type {
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                let isMapping = event.type == YAML_MAPPING_START_EVENT
                let anchor = text(isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor)
                try count(1, line: line)
                open.append(Open(isMapping: isMapping, anchor: anchor, nodesBefore: nodes - 1))
                if open.count > YAMLLimits.maxDepth {
                    throw CLIError("\(source): line \(line): nested deeper than \(YAMLLimits.maxDepth) levels")
                }
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                let done = open.removeLast()
                if let anchor = done.anchor { anchors[anchor] = (nodes - done.nodesBefore, done.height) }
                try finished(height: done.height, key: nil, line: line)
            case YAML_SCALAR_EVENT:
                try count(1, line: line)
                if let anchor = text(event.data.scalar.anchor) { anchors[anchor] = (1, 0) }
                let value = String(decoding: UnsafeBufferPointer(start: event.data.scalar.value, count: event.data.scalar.length),
                                   as: UTF8.self)
                try finished(height: 0, key: value, line: line)
            case YAML_ALIAS_EVENT:
                // An undefined alias is Yams's error to report.
                guard let anchor = text(event.data.alias.anchor), let target = anchors[anchor] else { return }
                try count(target.nodes, line: line)
                if open.count + target.height > YAMLLimits.maxDepth {
                    throw CLIError("\(source): line \(line): alias *\(anchor) nests deeper than \(YAMLLimits.maxDepth) levels")
                }
                try finished(height: target.height, key: nil, line: line)
            default:
                break
            }
        }

        mutating func count(_ added: Int, line: Int) throws {
            nodes += added
            if nodes > YAMLLimits.maxNodes {
                throw CLIError("\(source): line \(line): more than \(YAMLLimits.maxNodes) values once aliases are expanded")
            }
        }

        /// A node of `height` ended inside the innermost open collection; `key` is its text when a scalar.
        mutating func finished(height: Int, key: String?, line: Int) throws {
            guard var parent = open.popLast() else { return }
            parent.height = max(parent.height, height + 1)
            if parent.isMapping {
                if parent.nextIsKey, let key, !parent.keys.insert(key).inserted {
                    throw CLIError("\(source): line \(line): key '\(key)' appears twice in one mapping")
                }
                parent.nextIsKey.toggle()
            }
            open.append(parent)
        }

        func text(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
        }
    }
}
