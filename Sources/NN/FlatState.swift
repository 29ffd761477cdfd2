/// A network's parameters moved into flat buffers, with the index that maps them back.
struct FlatState {
    let parameters: ParameterSet
    let index: GradientIndex

    init(_ module: StateModule) {
        parameters = ParameterSet(module.state().compactMap { name, entry in
            if case .parameter(let p) = entry { return (name, p) }
            return nil
        })
        index = GradientIndex(parameters)
    }
}
