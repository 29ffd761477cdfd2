import Foundation
import Primitives

/// What a checkpoint's `deepdem` metadata says about the model (README, Checkpoints; the
/// contract is listed in docs/ARCHITECTURE.md).
/// Keys are DeepDEM's snake_case names; a missing optional key takes the reference's default.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var arch: String
    public var bands: [String]
    public var target: String
    public var chipSize: Int
    public var gsf: Double
    public var unet: UNetConfig?
    public var encoder: EncoderConfig?
    /// How the chips' ortho bands are standardized before the network (`OrthoStandardization`).
    public var orthoStandardization: OrthoStandardization

    enum CodingKeys: String, CodingKey {
        case arch, bands, target, gsf, unet, encoder
        case chipSize = "chip_size", orthoStandardization = "ortho_standardization"
    }

    public init(arch: String, bands: [String], target: String = "lidar_data", chipSize: Int, gsf: Double,
                unet: UNetConfig? = nil, encoder: EncoderConfig? = nil, orthoStandardization: OrthoStandardization = .none) {
        self.arch = arch
        self.bands = bands
        self.target = target
        self.chipSize = chipSize
        self.gsf = gsf
        self.unet = unet
        self.encoder = encoder
        self.orthoStandardization = orthoStandardization
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        arch = try c.decode(String.self, forKey: .arch)
        bands = try c.decode([String].self, forKey: .bands)
        target = try c.decode(String.self, forKey: .target)
        chipSize = try c.decode(Int.self, forKey: .chipSize)
        gsf = try c.decode(Double.self, forKey: .gsf)
        unet = try c.decodeIfPresent(UNetConfig.self, forKey: .unet)
        encoder = try c.decodeIfPresent(EncoderConfig.self, forKey: .encoder)
        orthoStandardization = try c.decodeIfPresent(OrthoStandardization.self, forKey: .orthoStandardization) ?? .none
    }

    /// Leaves `ortho_standardization` out when it is none, so a model without it writes the
    /// metadata it wrote before the key existed.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(arch, forKey: .arch)
        try c.encode(bands, forKey: .bands)
        try c.encode(target, forKey: .target)
        try c.encode(chipSize, forKey: .chipSize)
        try c.encode(gsf, forKey: .gsf)
        try c.encodeIfPresent(unet, forKey: .unet)
        try c.encodeIfPresent(self.encoder, forKey: .encoder)
        if orthoStandardization != .none { try c.encode(orthoStandardization, forKey: .orthoStandardization) }
    }

    public static let architectures = ["unet", "resnet18-unet", "resnet34-unet", "resnet50-unet"]
}

/// ResDepth's `UNet` constructor arguments.
public struct UNetConfig: Codable, Equatable, Sendable {
    public var nInputChannels: Int
    public var depth: Int
    public var startKernel: Int
    public var maxFilterDepth: Int
    public var doBN: Bool
    public var biasConvLayer: Bool
    public var outerSkip: Bool
    public var outerSkipBN: Bool
    public var upMode: String

    enum CodingKeys: String, CodingKey, CaseIterable {
        case depth
        case nInputChannels = "n_input_channels", startKernel = "start_kernel", maxFilterDepth = "max_filter_depth"
        case doBN = "do_BN", biasConvLayer = "bias_conv_layer", outerSkip = "outer_skip"
        case outerSkipBN = "outer_skip_BN", upMode = "up_mode"
    }

    /// ResDepth's `upconv` modes: a 2×2/2 transposed convolution, or bilinear ×2 then a conv1×1.
    public static let upModes = ["transpose", "bilinear"]

    /// The keys as checkpoints and training configurations spell them.
    public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// ResDepth's own defaults (`UNet.__init__` in its lib/UNet.py): what a key missing from a
    /// checkpoint's metadata means, since a converted ResDepth model may leave out what it
    /// never changed.
    public static let resDepth = UNetConfig(nInputChannels: 1, depth: 8, startKernel: 64, maxFilterDepth: 512,
                                            doBN: true, biasConvLayer: false, outerSkip: true, outerSkipBN: false,
                                            upMode: "transpose")

    /// What `deepdem train` builds when its `unet:` mapping leaves a key out (README, Training):
    /// DeepDEM's shallower U-Net, without BatchNorm or outer skip (`ResidualModel` adds the
    /// initial DSM instead).
    public static let training = UNetConfig(nInputChannels: 6, depth: 5, startKernel: 64, maxFilterDepth: 512,
                                            doBN: false, biasConvLayer: true, outerSkip: false, outerSkipBN: false,
                                            upMode: "transpose")

    public init(nInputChannels: Int, depth: Int = training.depth, startKernel: Int = training.startKernel,
                maxFilterDepth: Int = training.maxFilterDepth, doBN: Bool = training.doBN,
                biasConvLayer: Bool = training.biasConvLayer, outerSkip: Bool = training.outerSkip,
                outerSkipBN: Bool = training.outerSkipBN, upMode: String = training.upMode) {
        self.nInputChannels = nInputChannels
        self.depth = depth
        self.startKernel = startKernel
        self.maxFilterDepth = maxFilterDepth
        self.doBN = doBN
        self.biasConvLayer = biasConvLayer
        self.outerSkip = outerSkip
        self.outerSkipBN = outerSkipBN
        self.upMode = upMode
    }

    /// A checkpoint's `unet` object: `n_input_channels` is required, the rest default to ResDepth's.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var defaults = UNetConfig.resDepth
        defaults.nInputChannels = try c.decode(Int.self, forKey: .nInputChannels)
        try self.init(from: decoder, defaults: defaults)
    }

    /// The keys present in `decoder`, and `defaults` for the others.
    public init(from decoder: Decoder, defaults: UNetConfig) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self = defaults
        nInputChannels = try c.decodeIfPresent(Int.self, forKey: .nInputChannels) ?? nInputChannels
        depth = try c.decodeIfPresent(Int.self, forKey: .depth) ?? depth
        startKernel = try c.decodeIfPresent(Int.self, forKey: .startKernel) ?? startKernel
        maxFilterDepth = try c.decodeIfPresent(Int.self, forKey: .maxFilterDepth) ?? maxFilterDepth
        doBN = try c.decodeIfPresent(Bool.self, forKey: .doBN) ?? doBN
        biasConvLayer = try c.decodeIfPresent(Bool.self, forKey: .biasConvLayer) ?? biasConvLayer
        outerSkip = try c.decodeIfPresent(Bool.self, forKey: .outerSkip) ?? outerSkip
        outerSkipBN = try c.decodeIfPresent(Bool.self, forKey: .outerSkipBN) ?? outerSkipBN
        upMode = try c.decodeIfPresent(String.self, forKey: .upMode) ?? upMode
    }
}

/// segmentation_models_pytorch `Unet` encoder settings.
public struct EncoderConfig: Codable, Equatable, Sendable {
    public var name: String
    public var inChannels: Int
    public var decoderChannels: [Int]

    enum CodingKeys: String, CodingKey {
        case name
        case inChannels = "in_channels", decoderChannels = "decoder_channels"
    }

    /// smp's `Unet` defaults, which a checkpoint's missing keys take and training starts from.
    public static let smpInChannels = 3
    public static let smpDecoderChannels = [256, 128, 64, 32, 16]

    public init(name: String, inChannels: Int, decoderChannels: [Int] = smpDecoderChannels) {
        self.name = name
        self.inChannels = inChannels
        self.decoderChannels = decoderChannels
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? EncoderConfig.smpInChannels
        decoderChannels = try c.decodeIfPresent([Int].self, forKey: .decoderChannels) ?? EncoderConfig.smpDecoderChannels
    }
}

/// A model setting no network can be built from. `key` is spelled as in the checkpoint's
/// `deepdem` metadata (`unet.depth`, `encoder.decoder_channels`); `description` is the one line
/// to show, naming the key, its value and what is allowed.
public struct ModelConfigError: Error, CustomStringConvertible, Equatable {
    public let key: String
    /// What is wrong, after the key: "is 70; it must be between 1 and 12".
    public let problem: String
    public var description: String { "'\(key)' \(problem)" }

    init(_ key: String, _ problem: String) {
        self.key = key
        self.problem = problem
    }

    init(_ key: String, _ value: Int, within range: ClosedRange<Int>) {
        self.init(key, "is \(value); it must be between \(range.lowerBound) and \(range.upperBound)")
    }
}

extension ModelConfig {
    /// What a buildable configuration stays within. The ranges keep every size the layers compute
    /// far from overflowing, and the largest network they allow holds under 300 M parameters
    /// (1.2 GB), so a few bytes of metadata cannot make `info` allocate more than that.
    public enum Limits {
        public static let chipSize = 8...4096
        public static let depth = 1...12
        /// start_kernel, max_filter_depth and each of decoder_channels.
        public static let width = 1...1024
        public static let bands = 1...64
        /// Far wider than any terrain's (DeepDEM's are tens of metres), and narrow enough that gsf
        /// is a normal Float32 whose quotients and products with heights stay finite (1e308 is
        /// infinite as a Float32, 0 divides by zero).
        public static let gsf = 1e-6...1e6
        /// Values one chip's widest layer holds, counted as if every layer ran at full resolution:
        /// 8 GiB of Float32 (chip_size 2048 with 512 filters).
        public static let activationsPerChip = 1 << 31
        public static let decoderBlocks = 5
    }

    /// Throws a `ModelConfigError` naming the first setting outside what `makeNetwork` can build;
    /// callers check this before any layer is allocated.
    public func validate() throws {
        guard ModelConfig.architectures.contains(arch) else {
            throw ModelConfigError("arch", "is '\(arch)'; it must be one of \(ModelConfig.architectures.joined(separator: ", "))")
        }
        guard Limits.bands.contains(bands.count) else {
            throw ModelConfigError("bands", "lists \(bands.count) bands; it must list between \(Limits.bands.lowerBound) and \(Limits.bands.upperBound)")
        }
        // A standardization with nothing to standardize is a setting that silently does nothing.
        guard orthoStandardization == .none || bands.contains(where: OrthoStandardization.applies) else {
            throw ModelConfigError("ortho_standardization", "is \(orthoStandardization), but no band is an ortho_* band")
        }
        func channels(_ key: String, _ value: Int) throws {
            guard value == bands.count else { throw ModelConfigError(key, "is \(value), but 'bands' lists \(bands.count)") }
        }
        func width(_ key: String, _ value: Int) throws {
            guard Limits.width.contains(value) else { throw ModelConfigError(key, value, within: Limits.width) }
        }
        let multiple: Int, widest: Int
        if arch == "unet" {
            guard let u = unet else { throw ModelConfigError("unet", "is missing; a 'unet' model needs it") }
            try channels("unet.n_input_channels", u.nInputChannels)
            guard Limits.depth.contains(u.depth) else { throw ModelConfigError("unet.depth", u.depth, within: Limits.depth) }
            try width("unet.start_kernel", u.startKernel)
            try width("unet.max_filter_depth", u.maxFilterDepth)
            // The last layer takes start_kernel channels from a first level capped at max_filter_depth.
            guard u.maxFilterDepth >= u.startKernel else {
                throw ModelConfigError("unet.max_filter_depth", "is \(u.maxFilterDepth); it must be at least start_kernel (\(u.startKernel))")
            }
            guard UNetConfig.upModes.contains(u.upMode) else {
                throw ModelConfigError("unet.up_mode", "is '\(u.upMode)'; it must be one of \(UNetConfig.upModes.joined(separator: ", "))")
            }
            multiple = 1 << u.depth
            widest = max(u.nInputChannels, u.maxFilterDepth)
        } else {
            let name = String(arch.dropLast("-unet".count))
            guard let e = encoder else { throw ModelConfigError("encoder", "is missing; a '\(arch)' model needs it") }
            guard e.name == name else { throw ModelConfigError("encoder.name", "is '\(e.name)'; a '\(arch)' model needs '\(name)'") }
            try channels("encoder.in_channels", e.inChannels)
            guard e.decoderChannels.count == Limits.decoderBlocks else {
                throw ModelConfigError("encoder.decoder_channels", "has \(e.decoderChannels.count) entries; it needs \(Limits.decoderBlocks)")
            }
            for (i, d) in e.decoderChannels.enumerated() { try width("encoder.decoder_channels.\(i)", d) }
            multiple = 32   // the encoder halves the chip five times
            // Every architecture but unet names an encoder of the table.
            widest = max(e.inChannels, ResNetEncoder.named[name]!.featureChannels.last!, e.decoderChannels.max()!)
        }
        guard Limits.chipSize.contains(chipSize) else { throw ModelConfigError("chip_size", chipSize, within: Limits.chipSize) }
        guard chipSize % multiple == 0 else {
            throw ModelConfigError("chip_size", "is \(chipSize); a '\(arch)' model needs a multiple of \(multiple)"
                                   + (arch == "unet" ? " (2^unet.depth)" : ""))
        }
        let (area, o1) = chipSize.multipliedReportingOverflow(by: chipSize)
        let (values, o2) = area.multipliedReportingOverflow(by: widest)
        guard !o1, !o2, values <= Limits.activationsPerChip else {
            throw ModelConfigError("chip_size", "is \(chipSize); with layers \(widest) channels wide a chip would need more than "
                                   + "\(Limits.activationsPerChip) values per layer")
        }
        guard gsf.isFinite, Limits.gsf.contains(gsf) else {
            throw ModelConfigError("gsf", "is \(gsf); it must be between " + String(format: "%g and %g", Limits.gsf.lowerBound, Limits.gsf.upperBound))
        }
    }
}
