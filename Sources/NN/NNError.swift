/// A user-facing error of the NN library: one line, naming the file or setting at fault.
public struct NNError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
