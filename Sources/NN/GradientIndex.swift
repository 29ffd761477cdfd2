/// Which position of the flat parameter set each parameter holds, for the networks' gradient-ready notifications.
final class GradientIndex {
    private var index: [ObjectIdentifier: Int] = [:]

    init(_ set: ParameterSet) {
        for (i, p) in set.parameters.enumerated() { index[ObjectIdentifier(p)] = i }
    }

    func notify(_ layer: any Layer, _ hook: ((Int) -> Void)?) {
        guard let hook else { return }
        for p in layer.parameterList { if let i = index[ObjectIdentifier(p)] { hook(i) } }
    }
}
