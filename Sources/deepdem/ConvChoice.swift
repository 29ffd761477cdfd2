import Foundation
import NN

/// `DEEPDEM_CONV=reference` computes every convolution by its definition, far slower, to tell a
/// kernel bug from a model bug; `automatic` (the default) takes the fast routes.
enum ConvChoice {
    /// Applies the variable before any network is built; the notice, when there is one, says the
    /// run is in the slow mode.
    static func apply() throws -> String? {
        guard let value = ProcessInfo.processInfo.environment["DEEPDEM_CONV"], !value.isEmpty else { return nil }
        guard let algorithm = ConvAlgorithm(rawValue: value) else {
            let choices = ConvAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")
            throw CLIError("DEEPDEM_CONV=\(value): must be one of \(choices)")
        }
        ConvAlgorithm.forNewLayers = algorithm
        return algorithm == .reference ? "convolutions by their definition (DEEPDEM_CONV=reference): slow, for debugging" : nil
    }
}
