/// torch.optim.lr_scheduler.ReduceLROnPlateau in mode "min": after more than `patience`
/// epochs without an improvement beyond `threshold` the rate is multiplied by `factor` (not
/// below `minLR`, and only if it changes by more than `eps`), then `cooldown` epochs pass during
/// which bad epochs are not counted.
public struct ReduceLROnPlateau: Codable, Equatable, Sendable {
    public enum ThresholdMode: String, Codable, Sendable {
        /// Better means below best · (1 − threshold).
        case rel
        /// Better means below best − threshold.
        case abs
    }

    public let factor: Double
    public let patience: Int
    public let threshold: Double
    public let thresholdMode: ThresholdMode
    public let cooldown: Int
    public let minLR: Double
    public let eps: Double
    public private(set) var best = Double.infinity
    public private(set) var numBadEpochs = 0
    public private(set) var cooldownCounter = 0
    public private(set) var lastEpoch = 0

    public init(factor: Double = 0.1, patience: Int = 10, threshold: Double = 1e-4, thresholdMode: ThresholdMode = .rel,
                cooldown: Int = 0, minLR: Double = 0, eps: Double = 1e-8) {
        precondition(factor < 1, "ReduceLROnPlateau: factor must be below 1")
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.thresholdMode = thresholdMode
        self.cooldown = cooldown
        self.minLR = minLR
        self.eps = eps
    }

    enum CodingKeys: String, CodingKey {
        case factor, patience, threshold, cooldown, eps, best
        case thresholdMode = "threshold_mode", minLR = "min_lr", numBadEpochs = "num_bad_epochs"
        case cooldownCounter = "cooldown_counter", lastEpoch = "last_epoch"
    }

    /// `settings` with this schedule's progress (best metric, bad and cooldown epochs): for a
    /// resumed run whose schedule was changed.
    public func continued(as settings: ReduceLROnPlateau) -> ReduceLROnPlateau {
        var next = settings
        next.best = best
        next.numBadEpochs = numBadEpochs
        next.cooldownCounter = cooldownCounter
        next.lastEpoch = lastEpoch
        return next
    }

    func isBetter(_ metric: Double) -> Bool {
        switch thresholdMode {
        case .rel: return metric < best * (1 - threshold)
        case .abs: return metric < best - threshold
        }
    }

    /// Records one epoch's metric and returns the learning rate to use from now on.
    public mutating func step(metric: Double, lr: Double) -> Double {
        lastEpoch += 1
        if isBetter(metric) {
            best = metric
            numBadEpochs = 0
        } else {
            numBadEpochs += 1
        }
        if cooldownCounter > 0 {
            cooldownCounter -= 1
            numBadEpochs = 0
        }
        guard numBadEpochs > patience else { return lr }
        cooldownCounter = cooldown
        numBadEpochs = 0
        let reduced = max(lr * factor, minLR)
        return lr - reduced > eps ? reduced : lr
    }
}

/// torch.optim.lr_scheduler.StepLR: the rate is multiplied by `gamma` every `stepSize` epochs.
public struct StepLR: Codable, Equatable, Sendable {
    public let stepSize: Int
    public let gamma: Double
    public private(set) var lastEpoch = 0

    public init(stepSize: Int, gamma: Double = 0.1) {
        precondition(stepSize > 0, "StepLR: step size must be positive")
        self.stepSize = stepSize
        self.gamma = gamma
    }

    enum CodingKeys: String, CodingKey {
        case gamma
        case stepSize = "step_size", lastEpoch = "last_epoch"
    }

    /// Ends one epoch and returns the learning rate for the next (PyTorch multiplies the
    /// current rate rather than recomputing it, and so does this).
    public mutating func step(lr: Double) -> Double {
        lastEpoch += 1
        return lastEpoch % stepSize == 0 ? lr * gamma : lr
    }
}
