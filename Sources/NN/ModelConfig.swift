/// What a checkpoint's `deepdem` metadata says about the model (DESIGN.md, Checkpoints).
/// Keys are DeepDEM's snake_case names; a missing optional key takes the reference's default.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var arch: String
    public var bands: [String]
    public var target: String
    public var chipSize: Int
    public var gsf: Double
    public var unet: UNetConfig?
    public var encoder: EncoderConfig?

    enum CodingKeys: String, CodingKey {
        case arch, bands, target, gsf, unet, encoder
        case chipSize = "chip_size"
    }

    public init(arch: String, bands: [String], target: String = "lidar_data", chipSize: Int, gsf: Double,
                unet: UNetConfig? = nil, encoder: EncoderConfig? = nil) {
        self.arch = arch
        self.bands = bands
        self.target = target
        self.chipSize = chipSize
        self.gsf = gsf
        self.unet = unet
        self.encoder = encoder
    }

    public static let architectures = ["unet", "resnet18-unet", "resnet34-unet"]
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

    enum CodingKeys: String, CodingKey {
        case depth
        case nInputChannels = "n_input_channels", startKernel = "start_kernel", maxFilterDepth = "max_filter_depth"
        case doBN = "do_BN", biasConvLayer = "bias_conv_layer", outerSkip = "outer_skip"
        case outerSkipBN = "outer_skip_BN", upMode = "up_mode"
    }

    public init(nInputChannels: Int, depth: Int = 5, startKernel: Int = 64, maxFilterDepth: Int = 512,
                doBN: Bool = false, biasConvLayer: Bool = true, outerSkip: Bool = false,
                outerSkipBN: Bool = false, upMode: String = "transpose") {
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

    // Defaults are ResDepth's constructor defaults, except where DESIGN.md's example fixes them.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        nInputChannels = try c.decode(Int.self, forKey: .nInputChannels)
        depth = try c.decodeIfPresent(Int.self, forKey: .depth) ?? 8
        startKernel = try c.decodeIfPresent(Int.self, forKey: .startKernel) ?? 64
        maxFilterDepth = try c.decodeIfPresent(Int.self, forKey: .maxFilterDepth) ?? 512
        doBN = try c.decodeIfPresent(Bool.self, forKey: .doBN) ?? true
        biasConvLayer = try c.decodeIfPresent(Bool.self, forKey: .biasConvLayer) ?? false
        outerSkip = try c.decodeIfPresent(Bool.self, forKey: .outerSkip) ?? true
        outerSkipBN = try c.decodeIfPresent(Bool.self, forKey: .outerSkipBN) ?? false
        upMode = try c.decodeIfPresent(String.self, forKey: .upMode) ?? "transpose"
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

    public init(name: String, inChannels: Int, decoderChannels: [Int] = [256, 128, 64, 32, 16]) {
        self.name = name
        self.inChannels = inChannels
        self.decoderChannels = decoderChannels
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 3
        decoderChannels = try c.decodeIfPresent([Int].self, forKey: .decoderChannels) ?? [256, 128, 64, 32, 16]
    }
}
