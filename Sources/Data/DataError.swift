/// Every failure the Data library reports: one line naming the file (or folder) and what is wrong
/// with it, so the command line can print it as is.
public struct DataError: Error, CustomStringConvertible, Equatable, Sendable {
    public let path: String
    public let problem: String

    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { path.isEmpty ? problem : "\(path): \(problem)" }
}
