import Foundation

/// Pretrained (ImageNet) weights for the encoder of a ResNet U-Net: the `encoder.*` tensors of a
/// file that `tools/convert_checkpoint.py from-torchvision` wrote, put into a network before its
/// first training step. The decoder and head keep their seeded initialization.
///
/// The tensors are matched by the network's own state names and shapes (`state()`), so every
/// ResNet encoder the network can build is covered; a file of another depth or width fails on its
/// first tensor that differs. The one difference allowed is the first convolution's input
/// channels: ImageNet weights take 3 (RGB), a run takes its bands, and the weight is adapted as
/// segmentation_models_pytorch's `patch_first_conv` adapts it (`adaptFirstConv`).
public enum EncoderInit {
    public static let prefix = "encoder."
    /// What `from-torchvision` records under this metadata key: `{"name": "resnet18", ...}`.
    public static let metadataKey = "encoder"
    /// ImageNet's RGB input.
    public static let pretrainedChannels = 3

    public struct Loaded {
        /// The encoder name the file's metadata gives, if any.
        public let name: String?
        public let sha256: String
        /// Tensors taken from the file.
        public let tensors: Int
        /// The first convolution's name and input channels before and after, if it was adapted.
        public let adapted: (name: String, from: Int, to: Int)?
    }

    /// Loads `path`'s encoder tensors into `net`. Everything is checked before anything is
    /// copied, so a refused file leaves the network as it was.
    public static func load(_ path: String, into net: any Network) throws -> Loaded {
        guard let encoder = net.config.encoder else {
            throw NNError("\(path): a pretrained encoder initializes a ResNet U-Net; arch '\(net.config.arch)' has no ResNet encoder")
        }
        let file = try SafeTensors(contentsOf: path)
        let name = metadataName(file.metadata)
        let holds = name.map { " (the file holds a \($0) encoder)" } ?? ""
        let own = "the \(encoder.name) encoder"
        guard file.tensors.contains(where: { $0.name.hasPrefix(prefix) }) else {
            throw NNError("\(path): no '\(prefix)*' tensors: not an encoder file (tools/convert_checkpoint.py from-torchvision writes one)")
        }
        let entries = net.state().filter { $0.0.hasPrefix(prefix) }
        // The first convolution in state order is the stem, the one that sees the bands
        // (smp patches the first Conv2d with 3 input channels, the same layer).
        let firstConv = entries.first { $0.1.shape.count == 4 }?.0
        var adapted: (name: String, from: Int, to: Int)?
        var taken = 0
        for (key, entry) in entries {
            guard let t = file.info(key) else {
                if case .counter = entry { continue }   // older torchvision files predate the counter
                throw NNError("\(path): lacks tensor '\(key)' of \(own)\(holds)")
            }
            if case .counter = entry {
                guard t.count == 1, t.dtype == .i64 || t.dtype == .f32 else {
                    throw NNError("\(path): tensor '\(key)' is not a single count")
                }
                taken += 1
                continue
            }
            guard t.dtype == .f32 else {
                throw NNError("\(path): tensor '\(key)' has dtype \(t.dtype.rawValue), expected F32")
            }
            var expected = entry.shape
            if key == firstConv, t.shape.count == 4, t.shape[1] == pretrainedChannels, expected[1] != t.shape[1] {
                adapted = (key, t.shape[1], expected[1])
                expected[1] = t.shape[1]
            }
            guard t.shape == expected else {
                throw NNError("\(path): tensor '\(key)' has shape \(t.shape) but \(own)'s is \(entry.shape)\(holds)")
            }
            let bad = try file.floats(key).reduce(0) { $1.isFinite ? $0 : $0 + 1 }
            if bad > 0 { throw NNError("\(path): tensor '\(key)' holds \(bad) NaN or infinite value\(bad == 1 ? "" : "s")") }
            taken += 1
        }
        let known = Set(entries.map(\.0))
        if let extra = file.tensors.first(where: { $0.name.hasPrefix(prefix) && !known.contains($0.name) }) {
            throw NNError("\(path): tensor '\(extra.name)' is not part of \(own)\(holds)")
        }
        let sha256 = try SHA256.hex(ofFile: path)

        for (key, entry) in entries {
            guard file.info(key) != nil else { continue }
            switch entry {
            case .parameter(let p):
                if let adapted, key == adapted.name {
                    let w = try file.floats(key)
                    let o = p.shape[0], area = p.shape[2] * p.shape[3]
                    let a = adaptFirstConv(w, outChannels: o, kernelArea: area, to: adapted.to)
                    a.withUnsafeBufferPointer { p.value.data.update(from: $0.baseAddress!, count: a.count) }
                } else {
                    try file.copyFloats(key, to: p.value.data)
                }
            case .buffer(let b): try file.copyFloats(key, to: b.data)
            case .counter(let c):
                let t = file.info(key)!
                c.value = t.dtype == .i64 ? try file.int64s(key)[0] : Int64(try file.floats(key)[0])
            }
        }
        return Loaded(name: name, sha256: sha256, tensors: taken, adapted: adapted)
    }

    /// A first-convolution weight [O, 3, kh, kw] (PyTorch's layout) for `c` input channels, as smp's
    /// `patch_first_conv` makes it: one channel takes the sum of the three, in channel order; more
    /// channels repeat them cyclically (channel i is RGB channel i mod 3), scaled by 3/c so that an
    /// input whose bands are alike gives the same activations. The scale is the double 3/c rounded
    /// to float once, as PyTorch multiplies a float tensor by a Python float.
    public static func adaptFirstConv(_ w: [Float], outChannels o: Int, kernelArea area: Int, to c: Int) -> [Float] {
        let rgb = pretrainedChannels
        precondition(w.count == o * rgb * area && c > 0)
        if c == rgb { return w }
        var out = [Float](repeating: 0, count: o * c * area)
        let scale = Float(Double(rgb) / Double(c))
        for oc in 0..<o {
            let src = oc &* rgb &* area, dst = oc &* c &* area
            for k in 0..<area {
                if c == 1 {
                    out[dst &+ k] = (w[src &+ k] + w[src &+ area &+ k]) + w[src &+ 2 &* area &+ k]
                } else {
                    for i in 0..<c { out[dst &+ i &* area &+ k] = w[src &+ (i % rgb) &* area &+ k] * scale }
                }
            }
        }
        return out
    }

    static func metadataName(_ metadata: [String: String]) -> String? {
        guard let json = metadata[metadataKey],
              let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
        return object["name"] as? String
    }
}
