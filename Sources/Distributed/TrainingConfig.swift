import Foundation
import NN
import Primitives

/// `deepdem train`'s configuration (README, Training). Keys are DeepDEM's; every
/// top-level key can also be given as a command-line flag. Unknown keys and wrong types are errors
/// naming the key.
public struct TrainingConfig: Codable, Equatable, Sendable {
    /// A folder, a list of folders, or the folders of each role (`DataSetting`).
    public var data: DataSetting = []
    public var bands: [String] = ["asp_dsm", "ortho_channel1", "ortho_channel2", "ndvi", "nodata_mask", "triangulation_error"]
    public var target = "lidar_data"
    public var arch = "unet"
    /// Pretrained encoder tensors (`EncoderInit`) loaded before step 0 of a fresh run of a ResNet U-Net.
    public var initEncoder: String?
    /// `n_input_channels` follows `bands` unless the file gives it (and then must agree).
    public var unet = UNetConfig.training
    public var decoderChannels = EncoderConfig.smpDecoderChannels
    public var orthoStandardization = OrthoStandardization.none
    public var chipSize = 256
    /// "auto" (estimated from the training region) or a number.
    public var gsf = GSFSetting.auto
    public var batchSize = 24
    /// Micro-batches per optimizer step (Lightning's `accumulate_grad_batches`): each step is K
    /// micro-batches of batch_size/K chips whose gradients sum before the one all-reduce.
    public var accumulateGradBatches = 1
    public var lr = 5.0e-4
    public var weightDecay = 0.0
    public var maxEpochs = 300
    public var samplesPerEpoch = 48000
    public var valSamples = 12000
    public var valEvery: Int?
    public var maxSteps: Int?
    /// The left part of each scene of a data list that trains; nil where it does not apply
    /// (`split` or data roles hold out instead).
    public var trainSplit: Double? = 0.8
    /// Stripes within each scene of a data list, instead of `train_split`.
    public var split: StripeSplit?
    /// Rotates the stripes' roles for cross-validation: validation is stripe (val + fold) mod stripes.
    public var fold = 0
    public var minValidFraction = 0.5
    public var channelSwap = true
    /// Training chips also turn by 0, 90, 180 or 270° (with the flips, the square's 8 symmetries).
    public var rotate90 = false
    public var syncBatchnorm = false
    /// Of the convolutions' multiplications (`Precision`); weights, optimizer and loss stay fp32.
    public var precision = Precision.fp32
    public var lrScheduler = SchedulerSettings()
    public var earlyStopping = EarlyStoppingSettings()
    public var seed = 0
    public var threads = 1
    public var checkpointEvery = 500
    public var keepLast = 0
    public var logEvery = 10
    public var bucketMB = Double(GradientReducer.defaultBucketBytes >> 20)
    public var cacheMB = 512
    public var out = "runs/deepdem"

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case data, bands, target, arch, unet, gsf, lr, seed, threads, out, split, fold
        case decoderChannels = "decoder_channels", chipSize = "chip_size", batchSize = "batch_size"
        case weightDecay = "weight_decay", maxEpochs = "max_epochs", samplesPerEpoch = "samples_per_epoch"
        case valSamples = "val_samples", valEvery = "val_every", maxSteps = "max_steps", trainSplit = "train_split"
        case minValidFraction = "min_valid_fraction", channelSwap = "channel_swap", syncBatchnorm = "sync_batchnorm", precision
        case accumulateGradBatches = "accumulate_grad_batches", rotate90
        case lrScheduler = "lr_scheduler", earlyStopping = "early_stopping", checkpointEvery = "checkpoint_every"
        case keepLast = "keep_last", logEvery = "log_every", bucketMB = "bucket_mb", cacheMB = "cache_mb"
        case orthoStandardization = "ortho_standardization"
        case initEncoder = "init_encoder"
    }

    /// Every top-level key, as the config file spells it.
    public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var s = TrainingConfig()
        try take(.data, &s.data)
        func take<T: Decodable>(_ key: CodingKeys, _ value: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { value = v }
        }
        try take(.bands, &s.bands); try take(.target, &s.target); try take(.arch, &s.arch)
        s.initEncoder = try c.decodeIfPresent(String.self, forKey: .initEncoder)
        if c.contains(.unet) {
            var defaults = UNetConfig.training
            defaults.nInputChannels = s.bands.count
            s.unet = try UNetConfig(from: c.superDecoder(forKey: .unet), defaults: defaults)
        } else {
            s.unet.nInputChannels = s.bands.count
        }
        try take(.decoderChannels, &s.decoderChannels); try take(.orthoStandardization, &s.orthoStandardization)
        try take(.chipSize, &s.chipSize)
        try take(.gsf, &s.gsf); try take(.batchSize, &s.batchSize); try take(.lr, &s.lr)
        try take(.weightDecay, &s.weightDecay); try take(.maxEpochs, &s.maxEpochs)
        try take(.samplesPerEpoch, &s.samplesPerEpoch); try take(.valSamples, &s.valSamples)
        s.valEvery = try c.decodeIfPresent(Int.self, forKey: .valEvery)
        s.maxSteps = try c.decodeIfPresent(Int.self, forKey: .maxSteps)
        s.split = try c.decodeIfPresent(StripeSplit.self, forKey: .split)
        try take(.fold, &s.fold)
        // train_split holds out the right of each scene of a list; stripes and roles hold out otherwise.
        if s.split != nil || s.data.roles != nil {
            s.trainSplit = try c.decodeIfPresent(Double.self, forKey: .trainSplit)
            if s.trainSplit != nil {
                throw ConfigError(s.split != nil ? "'split' and 'train_split' both choose the held-out pixels: give one of them"
                    : "'train_split' splits the scenes of a data list; data roles (train, val, test) hold out whole scenes: remove it")
            }
        } else {
            try take(.trainSplit, &s.trainSplit)
        }
        try take(.minValidFraction, &s.minValidFraction)
        try take(.channelSwap, &s.channelSwap); try take(.syncBatchnorm, &s.syncBatchnorm)
        try take(.accumulateGradBatches, &s.accumulateGradBatches); try take(.rotate90, &s.rotate90)
        if let name = try c.decodeIfPresent(String.self, forKey: .precision) {
            guard let p = Precision(rawValue: name) else {
                throw ConfigError("'precision' is '\(name)'; it must be one of \(Precision.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            s.precision = p
        }
        try take(.lrScheduler, &s.lrScheduler); try take(.earlyStopping, &s.earlyStopping)
        try take(.seed, &s.seed); try take(.threads, &s.threads); try take(.checkpointEvery, &s.checkpointEvery)
        try take(.keepLast, &s.keepLast); try take(.logEvery, &s.logEvery); try take(.bucketMB, &s.bucketMB)
        try take(.cacheMB, &s.cacheMB); try take(.out, &s.out)
        self = s
    }

    /// Parses a config from a JSON object (what YAML or JSON files and flags are turned into),
    /// with errors that name the key.
    public static func decode(_ object: [String: Any]) throws -> TrainingConfig {
        for key in object.keys where !keys.contains(key) {
            throw ConfigError("unknown key '\(key)' (known: \(keys.sorted().joined(separator: ", ")))")
        }
        try checkNested(object, "unet", UNetConfig.keys)
        try checkNested(object, "lr_scheduler", SchedulerSettings.CodingKeys.allCases.map(\.rawValue))
        try checkNested(object, "early_stopping", EarlyStoppingSettings.CodingKeys.allCases.map(\.rawValue))
        try checkNested(object, "split", StripeSplit.CodingKeys.allCases.map(\.rawValue))
        switch object["data"] {
        case nil, is String, is [String]: break
        case let roles as [String: Any]:
            try checkNested(object, "data", DataRoles.CodingKeys.allCases.map(\.rawValue))
            for (role, value) in roles where !(value is String || value is [String]) {
                throw ConfigError("'data.\(role)' must be a scene folder or a list of them")
            }
        default: throw ConfigError("'data' must be a scene folder, a list of them, or roles {train: [...], val: [...], test: [...]}")
        }
        // YAML has .inf and .nan, JSON does not: name the key rather than fail in JSONSerialization.
        if let (key, value) = nonFinite(object, "") { throw ConfigError("'\(key)' is \(value); it must be a finite number") }
        let json = try JSONSerialization.data(withJSONObject: object.filter { !($0.value is NSNull) })
        do {
            return try JSONDecoder().decode(TrainingConfig.self, from: json)
        } catch let DecodingError.typeMismatch(type, context), let DecodingError.valueNotFound(type, context) {
            throw ConfigError("'\(context.codingPath.map(\.stringValue).joined(separator: "."))' must be \(describe(type))")
        } catch let DecodingError.dataCorrupted(context) {
            throw ConfigError("'\(context.codingPath.map(\.stringValue).joined(separator: "."))': \(context.debugDescription)")
        }
    }

    private static func nonFinite(_ value: Any, _ key: String) -> (String, Double)? {
        switch value {
        case let d as Double: return d.isFinite ? nil : (key, d)
        case let m as [String: Any]: return m.keys.sorted().lazy.compactMap { nonFinite(m[$0]!, key.isEmpty ? $0 : key + "." + $0) }.first
        case let a as [Any]: return a.lazy.compactMap { nonFinite($0, key) }.first
        default: return nil
        }
    }

    private static func checkNested(_ object: [String: Any], _ key: String, _ known: [String]) throws {
        guard let nested = object[key] else { return }
        guard let dict = nested as? [String: Any] else { throw ConfigError("'\(key)' must be a mapping") }
        for k in dict.keys where !known.contains(k) {
            throw ConfigError("unknown key '\(key).\(k)' (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int?.Type: return "an integer"
        case is Double.Type, is Double?.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        case is [String].Type: return "a list of strings"
        case is [Int].Type: return "a list of integers"
        default: return "\(type)"
        }
    }

    /// Checks values that decode but cannot work, before any rank starts. Bounds keep every count
    /// derived from them (steps, chips per rank, bytes) far from overflowing.
    public func validate(ranks: Int) throws {
        guard !data.opened.isEmpty else { throw ConfigError("'data' is missing: name a scene folder (or a list of them)") }
        if let roles = data.roles {
            if let (folder, (a, b)) = roles.shared {
                throw ConfigError("'data': \(folder) is both a \(a) and a \(b) scene; each scene has one role")
            }
            if split != nil { throw ConfigError("'split' cuts the scenes of a data list; data roles (train, val, test) hold out whole scenes") }
        }
        if let split {
            try split.check(fold: fold)
            if trainSplit != nil { throw ConfigError("'split' and 'train_split' both choose the held-out pixels: give one of them") }
        } else if fold != 0 {
            throw ConfigError("'fold' is \(fold); it rotates the stripes of 'split', and without 'split' it must be 0")
        }
        guard bands.first == "asp_dsm" else { throw ConfigError("'bands' must start with asp_dsm") }
        guard ["lidar_data", "lidar_dtm_data"].contains(target) else {
            throw ConfigError("'target' is '\(target)'; it must be lidar_data or lidar_dtm_data")
        }
        // An automatic gsf is checked with the model once it is estimated; 1 stands in for it.
        var standIn = 1.0
        if case .value(let v) = gsf { standIn = v }
        do {
            try modelConfig(gsf: standIn).validate()
        } catch let e as ModelConfigError {
            // The model's keys as this file spells them: decoder_channels is top-level here.
            let key = e.key.hasPrefix("encoder.") ? String(e.key.dropFirst("encoder.".count)) : e.key
            throw ConfigError("'\(key)' \(e.problem)")
        }
        if initEncoder != nil, arch == "unet" {
            throw ConfigError("'init_encoder' loads a pretrained ResNet encoder; arch 'unet' has none (resnet18-unet and resnet34-unet do)")
        }
        guard batchSize >= ranks else {
            throw ConfigError("'batch_size' \(batchSize) is smaller than the \(ranks) ranks: every rank needs at least one chip")
        }
        let positive = "positive"
        func within(_ key: String, _ value: Int, _ range: ClosedRange<Int>) -> (key: String, value: String, valid: Bool, rule: String) {
            (key, "\(value)", range.contains(value), "between \(range.lowerBound) and \(range.upperBound)")
        }
        let ranges: [(key: String, value: String, valid: Bool, rule: String)] = [
            ("lr", "\(lr)", lr > 0 && lr.isFinite, "positive and finite"),
            within("batch_size", batchSize, 1...4096), within("accumulate_grad_batches", accumulateGradBatches, 1...4096),
            within("samples_per_epoch", samplesPerEpoch, 1...1_000_000_000),
            within("val_samples", valSamples, 0...1_000_000_000), within("max_epochs", maxEpochs, 1...1_000_000),
            ("checkpoint_every", "\(checkpointEvery)", checkpointEvery > 0, positive), ("log_every", "\(logEvery)", logEvery > 0, positive),
            ("val_every", "\(valEvery ?? 1)", (valEvery ?? 1) > 0, positive), ("keep_last", "\(keepLast)", keepLast >= 0, "0 or more"),
            within("threads", threads, 1...1024), within("cache_mb", cacheMB, 1...1 << 20),
            ("bucket_mb", "\(bucketMB)", bucketMB > 0 && bucketMB <= 1_048_576, "positive and at most 1048576"),
            ("min_valid_fraction", "\(minValidFraction)", (0...1).contains(minValidFraction), "in [0, 1]"),
            ("train_split", "\(trainSplit ?? 0.5)", (trainSplit ?? 0.5) > 0 && (trainSplit ?? 0.5) < 1, "in (0, 1)"),
            ("lr_scheduler.step_size", "\(lrScheduler.stepSize)", lrScheduler.stepSize > 0, positive),
        ]
        if let bad = ranges.first(where: { !$0.valid }) { throw ConfigError("'\(bad.key)' is \(bad.value); it must be \(bad.rule)") }
        guard batchSize % accumulateGradBatches == 0 else {
            throw ConfigError("'accumulate_grad_batches' \(accumulateGradBatches) does not divide 'batch_size' \(batchSize): "
                + "a step is accumulate_grad_batches micro-batches of equal size")
        }
        guard microBatchSize >= ranks else {
            throw ConfigError("'accumulate_grad_batches' \(accumulateGradBatches) makes micro-batches of \(microBatchSize) chips, "
                + "fewer than the \(ranks) ranks: every rank needs at least one chip of each")
        }
        if let m = maxSteps, m < 0 { throw ConfigError("'max_steps' must not be negative") }
        guard ["plateau", "step", "none"].contains(lrScheduler.kind) else {
            throw ConfigError("'lr_scheduler.kind' is '\(lrScheduler.kind)'; known: plateau, step, none")
        }
    }

    /// The model these settings describe.
    public func modelConfig(gsf: Double) -> ModelConfig {
        var m = ModelConfig(arch: arch, bands: bands, target: target, chipSize: chipSize, gsf: gsf,
                            orthoStandardization: orthoStandardization)
        if arch == "unet" {
            m.unet = unet
        } else {
            m.encoder = EncoderConfig(name: String(arch.dropLast("-unet".count)), inChannels: bands.count,
                                      decoderChannels: decoderChannels)
        }
        return m
    }

    /// Chips in one micro-batch (all ranks): a step's global batch is `accumulate_grad_batches` of them.
    public var microBatchSize: Int { batchSize / accumulateGradBatches }

    /// Steps in an epoch: the global batches that make up `samples_per_epoch` chips.
    public var stepsPerEpoch: Int { max(1, (samplesPerEpoch + batchSize - 1) / batchSize) }
}

public enum GSFSetting: Codable, Equatable, Sendable {
    case auto
    case value(Double)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Double.self) { self = .value(v); return }
        if let s = try? c.decode(String.self), s == "auto" { self = .auto; return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "must be a number or auto")
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .auto: try c.encode("auto")
        case .value(let v): try c.encode(v)
        }
    }
}

/// `lr_scheduler:` — plateau (ReduceLROnPlateau on the validation loss), step (StepLR by epoch) or none.
public struct SchedulerSettings: Codable, Equatable, Sendable {
    public var kind = "plateau"
    public var factor = 0.5, patience = 50, threshold = 0.1, minLR = 1.0e-6, cooldown = 0
    public var stepSize = 30, gamma = 0.1

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, factor, patience, threshold, cooldown, gamma
        case minLR = "min_lr", stepSize = "step_size"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var s = SchedulerSettings()
        s.kind = try c.decodeIfPresent(String.self, forKey: .kind) ?? s.kind
        s.factor = try c.decodeIfPresent(Double.self, forKey: .factor) ?? s.factor
        s.patience = try c.decodeIfPresent(Int.self, forKey: .patience) ?? s.patience
        s.threshold = try c.decodeIfPresent(Double.self, forKey: .threshold) ?? s.threshold
        s.minLR = try c.decodeIfPresent(Double.self, forKey: .minLR) ?? s.minLR
        s.cooldown = try c.decodeIfPresent(Int.self, forKey: .cooldown) ?? s.cooldown
        s.stepSize = try c.decodeIfPresent(Int.self, forKey: .stepSize) ?? s.stepSize
        s.gamma = try c.decodeIfPresent(Double.self, forKey: .gamma) ?? s.gamma
        self = s
    }
}

/// `early_stopping:` — stop after `patience` validations without an improvement of `min_delta`.
public struct EarlyStoppingSettings: Codable, Equatable, Sendable {
    public var patience = 75
    public var minDelta = 0.05

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case patience
        case minDelta = "min_delta"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var s = EarlyStoppingSettings()
        s.patience = try c.decodeIfPresent(Int.self, forKey: .patience) ?? s.patience
        s.minDelta = try c.decodeIfPresent(Double.self, forKey: .minDelta) ?? s.minDelta
        self = s
    }
}

/// A configuration mistake: one line naming the key.
public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = "config: " + description }
}

/// A failure of the training run itself (files, state, numerics): one line.
public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
