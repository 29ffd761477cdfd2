import Data
import Foundation
import NN

/// What the training loop reports to rank 0's caller, which prints it (the library never prints).
public enum TrainingEvent: Sendable {
    case started(TrainingSummary)
    case step(StepReport)
    case validated(step: Int, epoch: Int, valLoss: Double, best: Bool)
    case checkpoint(step: Int, path: String)
    case note(String)
    /// The test phase refined and evaluated one test region.
    case tested(TestedScene)
    /// The test phase wrote test.json (`path`).
    case testWritten(path: String, report: TestReport)
}

public struct TrainingSummary: Sendable {
    public var ranks: Int, parameters: Int, gsf: Double, startStep: Int, totalSteps: Int, stepsPerEpoch: Int
    public var localBatch: ClosedRange<Int>, buckets: Int, blasCore: String, blasThreads: Int, resumed: Bool
}

public struct StepReport: Sendable {
    public var step: Int, epoch: Int, totalSteps: Int, loss: Double, lr: Double, tilesPerSecond: Double, secondsLeft: Double
}

public enum TrainingOutcome: Equatable, Sendable {
    case finished(String)
    /// A stop signal reached some rank; the state at `step` is saved and the run can resume.
    case stopped(signal: Int32, step: Int)
    /// The loss became NaN or infinite at `step`; the last good checkpoint is kept.
    case diverged(step: Int)
}

/// Data-parallel training (docs/ARCHITECTURE.md, A training step): every rank reads its contiguous slice of each
/// global batch, computes gradients with an identical network, sums them with the bucketed
/// all-reduce while backward runs, and applies the identical Adam step. Rank 0 writes the run
/// folder. Chips are a function of (seed, step, index), so N ranks train exactly as one.
public final class Trainer {
    public let config: TrainingConfig
    let comm: Communicator
    let folder: RunFolder
    let network: any Network
    let model: ResidualModel
    let optimizer: Adam
    let reducer: GradientReducer
    let trainSampler: ChipSampler
    let valSampler: ChipSampler?
    /// What the test phase refines and evaluates once training has finished.
    let testTargets: [TestTarget]
    let reader: ChipReader
    let stop: (() -> Int32?)?
    let events: (TrainingEvent) -> Void
    var state: TrainerState
    let resumed: Bool
    /// What the log says about a resumption, after the start line.
    let resumeNotes: [String]
    let buffers: [Tensor]
    /// Rank 0's lock on the run folder, held for the trainer's (the process's) life.
    private let runLock: RunLock?
    private var lastCheckpoint = -1
    /// This rank's first failure of its own work, not yet known to the others (see `locally`).
    private var failure: Error?

    /// Sets everything up on every rank; throws (on every rank alike) for bad data or state.
    /// Without `resume`, a run folder that holds a run is refused unless `overwrite`, which
    /// replaces that run. `configFile` is the file the configuration came from (an input, like
    /// the scenes and `initCheckpoint`, that the run must not write onto).
    /// `stop` reports a pending stop signal on this rank; `events` is called on rank 0 only.
    ///
    /// The steps that can fail run inside `agreeing`, so that every rank completes or fails each
    /// one together and a bad file on one rank cannot leave the others waiting in a collective.
    public init(config: TrainingConfig, communicator: Communicator, resume: Bool, resumeAnyway: Bool = false,
                overwrite: Bool = false, configFile: String? = nil, initCheckpoint: String? = nil,
                stop: (() -> Int32?)? = nil, events: @escaping (TrainingEvent) -> Void) throws {
        self.config = config
        comm = communicator
        let folder = RunFolder(config.out)
        self.folder = folder
        self.stop = stop
        let rank0 = communicator.rank == 0
        let emit: (TrainingEvent) -> Void = rank0 ? events : { _ in }
        self.events = emit

        let scenes = try agreeing(communicator) {
            try Trainer.checkRequest(config, ranks: communicator.size, resume: resume, overwrite: overwrite, folder: folder,
                                     inputs: [configFile, initCheckpoint, config.initEncoder].compactMap { $0 })
            if initCheckpoint != nil, config.initEncoder != nil {
                throw TrainingError("--init loads a whole model and init_encoder its encoder: give one of them")
            }
            if let note = Trainer.setResourceLimits(config) { emit(.note(note)) }
            return try config.data.opened.map { try Scene(folder: $0, bands: config.bands, target: config.target) }
        }
        let regions = try agreeing(communicator) { try Trainer.regions(scenes, config) }
        let maps = try Trainer.shareValidityMaps(scenes, communicator)
        let (lock, samplers, resumption) = try agreeing(communicator) {
            var lock: (lock: RunLock?, unavailable: String?) = (nil, nil)
            if rank0 { lock = try Trainer.claim(folder, config, resume: resume, overwrite: overwrite) }
            let samplers = try Trainer.makeSamplers(maps, regions, config)
            let resumption = resume && folder.hasState
                ? try Resumption(saved: folder.savedConfig() ?? config, savedRanks: folder.savedRanks(), now: config,
                                 anyway: resumeAnyway)
                : nil
            return (lock, samplers, resumption)
        }
        runLock = lock.lock
        if let unavailable = lock.unavailable { self.events(.note(unavailable)) }
        trainSampler = samplers.train
        valSampler = samplers.validation
        testTargets = config.data.testScenes.map { TestTarget(folder: $0, window: nil) }
            + zip(config.data.opened, regions).flatMap { folder, r in r.test.map { TestTarget(folder: folder, window: $0) } }
        reader = ChipReader(scenes: scenes, chipSize: config.chipSize, orthoStandardization: config.orthoStandardization)
        resumed = resumption != nil
        if resume && resumption == nil { self.events(.note("no saved state in \(config.out); starting fresh")) }

        let gsf = try Trainer.agreeOnGSF(config, resumption: resumption, folder: folder, scenes: scenes, regions: regions, communicator)
        let (network, optimizer, state, encoder) = try agreeing(communicator) {
            let (network, optimizer, state, encoder) = try Trainer.makeModel(config, gsf: gsf, resumption: resumption, folder: folder,
                                                                             initCheckpoint: rank0 ? initCheckpoint : nil, rank0: rank0)
            if rank0 { try Trainer.prepare(folder, config, resumedAt: resumption.map { _ in state.step }) }
            return (network, optimizer, state, encoder)
        }
        if let encoder, let path = config.initEncoder {
            let adapted = encoder.adapted.map { ", \($0.name) adapted from \($0.from) to \($0.to) input channels" } ?? ""
            emit(.note("init_encoder \(path) (sha256 \(encoder.sha256)): \(encoder.tensors) tensors of the \(encoder.name ?? "pretrained") "
                       + "encoder\(adapted); decoder and head from the seed"))
        }
        self.network = network
        self.optimizer = optimizer
        self.state = state
        resumeNotes = resumption?.notes(ranks: communicator.size, threads: config.threads,
                                        unsyncedBatchNorm: !network.batchNorms.isEmpty && !config.syncBatchnorm) ?? []
        if resumption != nil { lastCheckpoint = state.step }   // the state on disk is this one
        buffers = network.state().compactMap { if case .buffer(let t) = $1 { return t } else { return nil } }
        model = ResidualModel(network: network, gsf: Float(state.gsf))
        reducer = GradientReducer(parameters: network.parameters, communicator: communicator,
                                  mode: .bucketed(bucketBytes: Int(config.bucketMB * 1_048_576)))

        // Every rank starts from rank 0's weights, whatever it initialized or loaded.
        try communicator.broadcast(network.parameters.valueBuffer, root: 0)
        try broadcastBuffers()
        connectCollectives()
    }

    /// Refuses, before any work, what cannot run: a configuration that does not fit `ranks`,
    /// contradictory flags, and a run folder whose files would overwrite an input.
    private static func checkRequest(_ config: TrainingConfig, ranks: Int, resume: Bool, overwrite: Bool,
                                     folder: RunFolder, inputs: [String]) throws {
        try config.validate(ranks: ranks)
        if resume && overwrite {
            throw TrainingError("--resume continues the run in \(config.out) and --overwrite replaces it: give one of them")
        }
        // Test scenes are not opened before the test phase: here they need only exist.
        for test in config.data.testScenes {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: test, isDirectory: &isFolder), isFolder.boolValue else {
                throw DataError(test, "no such scene folder (a test scene of 'data')")
            }
        }
        let scenes = config.data.opened + config.data.testScenes
        try InputGuard.check(files: folder.runFiles, folders: folder.runFolders,
                             reading: inputs + config.data.testScenes + scenes.flatMap(InputGuard.sceneFiles))
    }

    /// Where each role takes each opened scene's pixels: `split`'s stripes, data roles' whole
    /// scenes, or `train_split`'s left and right. A held-out stripe smaller than a chip is refused.
    private static func regions(_ scenes: [Scene], _ config: TrainingConfig) throws -> [SceneRegions] {
        try scenes.enumerated().map { i, scene in
            let (width, height) = (scene.grid.width, scene.grid.height)
            if let split = config.split {
                let r = split.regions(fold: config.fold, width: width, height: height, chipSize: config.chipSize)
                let (v, t) = split.rotated(by: config.fold)
                for (role, stripe, window) in [("validation", v, r.validation.first), ("test", t, r.test.first)] {
                    if let stripe, let w = window, w.width < config.chipSize || w.height < config.chipSize {
                        throw DataError(scene.folder, "the \(role) stripe \(stripe) of 'split' (fold \(config.fold)) is \(w.width)×\(w.height) px, "
                            + "smaller than a chip of \(config.chipSize) px")
                    }
                }
                return r
            }
            if let roles = config.data.roles {
                let whole = SceneRegions.whole(width: width, height: height)
                return i < roles.train.count ? SceneRegions(train: [whole]) : SceneRegions(validation: [whole])
            }
            return SceneRegions.trainSplit(config.trainSplit ?? 0.8, width: width, height: height)
        }
    }

    /// The layers' threads and precision and GDAL's block cache, process-wide settings the
    /// configuration owns; the note, if any, says the precision asked for cannot run here.
    private static func setResourceLimits(_ config: TrainingConfig) -> String? {
        ComputeThreads.set(config.threads)
        let (precision, note) = config.precision.onThisCPU
        Precision.forNewLayers = precision
        GDAL.setCacheBudget(bytes: config.cacheMB << 20)
        return note ?? (precision == .bf16Mixed ? "precision bf16-mixed: convolutions multiply bf16 operands, summed in fp32" : nil)
    }

    /// Only rank 0 reads whole scenes (for the validity maps where chips may lie) and sends the
    /// maps' tables; the other ranks read nothing but their chip windows.
    private static func shareValidityMaps(_ scenes: [Scene], _ comm: Communicator) throws -> [ValidityMap] {
        let rank0 = comm.rank == 0
        let own = try agreeing(comm) { rank0 ? try scenes.map { try ValidityMap(scene: $0, cell: validityCell) } : [] }
        return try scenes.indices.map { i in
            let table = try comm.broadcast(rank0 ? own[i].summedTable : [], root: 0)
            return rank0 ? own[i] : try ValidityMap(scene: scenes[i], cell: validityCell, table: table)
        }
    }

    /// Rank 0 locks the run folder and refuses one that holds a run it was not told to continue
    /// or replace. Returns the lock, or why none could be taken (training goes on without it).
    private static func claim(_ folder: RunFolder, _ config: TrainingConfig, resume: Bool,
                              overwrite: Bool) throws -> (lock: RunLock?, unavailable: String?) {
        let lock = try folder.lock()
        if !resume, !overwrite, folder.holdsRun {
            throw TrainingError("\(config.out): already holds a run (pass --resume to continue it or --overwrite to replace it)")
        }
        return lock
    }

    /// The training chips and the validation chips (none without a validation region), from each
    /// role's regions, both fixed by the seed.
    private static func makeSamplers(_ maps: [ValidityMap], _ regions: [SceneRegions],
                                     _ config: TrainingConfig) throws -> (train: ChipSampler, validation: ChipSampler?) {
        let seed = UInt64(bitPattern: Int64(config.seed))
        let train = try ChipSampler(maps: maps, region: .train, windows: regions.map(\.train), chipSize: config.chipSize,
                                    minValidFraction: config.minValidFraction, seed: seed, channelSwap: config.channelSwap,
                                    rotate90: config.rotate90)
        let val = config.valSamples > 0 && regions.contains { !$0.validation.isEmpty }
            ? try ChipSampler(maps: maps, region: .validation, windows: regions.map(\.validation), chipSize: config.chipSize,
                              minValidFraction: config.minValidFraction, seed: seed)
            : nil
        return (train, val)
    }

    /// The gsf every rank uses: the saved run's (unless changed with --resume-anyway), the
    /// configured value, or rank 0's estimate from the training region.
    private static func agreeOnGSF(_ config: TrainingConfig, resumption: Resumption?, folder: RunFolder, scenes: [Scene],
                                   regions: [SceneRegions], _ comm: Communicator) throws -> Double {
        if let resumption {
            let saved = try agreeing(comm) { try folder.savedGSF() }
            if resumption.changed("gsf"), case .value(let v) = config.gsf { return v }
            return saved
        }
        if case .value(let v) = config.gsf { return v }
        var g = [try agreeing(comm) { comm.rank == 0 ? try estimateGSF(scenes, regions, config) : 0 }]
        try g.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
        return g[0]
    }

    /// The network, its optimizer and the trainer state: fresh (from `initCheckpoint`'s weights,
    /// or with `init_encoder`'s encoder, when given), or the saved run's, with what --resume-anyway
    /// changed applied. A resumed run never reloads `init_encoder`: its state already holds what
    /// step 0 began with, and more.
    private static func makeModel(_ config: TrainingConfig, gsf: Double, resumption: Resumption?, folder: RunFolder,
                                  initCheckpoint: String?, rank0: Bool) throws -> (any Network, Adam, TrainerState, EncoderInit.Loaded?) {
        let network = try makeNetwork(config.modelConfig(gsf: gsf), seed: UInt64(bitPattern: Int64(config.seed)))
        let optimizer = Adam(network.parameters, lr: config.lr, weightDecay: config.weightDecay)
        guard let resumption else {
            if let initCheckpoint { try loadInit(initCheckpoint, into: network, expected: config.modelConfig(gsf: gsf)) }
            // Rank 0 alone reads it; the broadcast of its weights and buffers reaches the others.
            let encoder = try config.initEncoder.flatMap { rank0 ? try EncoderInit.load($0, into: network) : nil }
            return (network, optimizer, TrainerState(lr: config.lr, gsf: gsf), encoder)
        }
        var state = try folder.loadState(network: network, optimizer: optimizer)
        state.gsf = gsf
        // Settings changed with --resume-anyway take effect; the schedule keeps its progress.
        if resumption.changed("lr") { state.lr = config.lr }
        if resumption.changed("lr_scheduler") {
            state.plateau = state.plateau?.continued(as: plateau(config))
            state.stepLR = state.stepLR.map { stepLR(config, after: $0.lastEpoch) }
        }
        optimizer.lr = state.lr
        return (network, optimizer, state, nil)
    }

    /// Rank 0 readies the run folder: a resumed run drops the metrics logged after its state, a
    /// fresh start (allowed: --overwrite, or --resume finding no state) removes every file of the
    /// earlier run, which the new run's would mix with; the TensorBoard mirror is rebuilt from
    /// the metrics kept.
    private static func prepare(_ folder: RunFolder, _ config: TrainingConfig, resumedAt step: Int?) throws {
        if let step { try folder.truncateMetrics(after: step) } else { try folder.removeRun() }
        try folder.create()
        try folder.writeConfig(config)
        try folder.rebuildTensorBoard()
    }

    /// The collectives inside backward: gradient buckets leave as they are finished, and with
    /// sync_batchnorm every BatchNorm sums its batch statistics over the ranks.
    private func connectCollectives() {
        if config.syncBatchnorm, comm.size > 1 {
            for bn in network.batchNorms {
                bn.reducer = { [comm] stats in
                    // Rank-ordered sums: every rank normalizes with the same bits.
                    if let sums = try? comm.sumAcrossRanks(Array(stats)) {
                        for i in stats.indices { stats[i] = sums[i] }
                    }
                }
            }
        }
        network.gradientReady = { [reducer] in reducer.gradientReady($0) }
    }

    /// Σ mask over a batch, which the loss divides by, known before any forward. Masks hold 0 or
    /// 1, so the sum is exact in any order and equals the count `ResidualModel.loss` returns.
    static func validPixels(_ mask: Tensor) -> Double {
        var count = 0.0
        for i in 0..<mask.count { count += Double(mask.data[i]) }
        return count
    }

    /// Chip positions lie on this lattice (pixels); see `ValidityMap`.
    static let validityCell = 4

    public var totalSteps: Int { min(config.maxSteps ?? Int.max, config.maxEpochs * config.stepsPerEpoch) }

    /// Rank `r`'s contiguous share of `count` items.
    func slice(_ count: Int) -> Range<Int> {
        (count * comm.rank / comm.size)..<(count * (comm.rank + 1) / comm.size)
    }

    public func run() throws -> TrainingOutcome {
        // A step is `accumulations` micro-batches of consecutive global chip indices, each split
        // over the ranks like a whole batch: the step sees exactly the chips of one batch.
        let accumulations = config.accumulateGradBatches, micro = config.microBatchSize
        let local = slice(micro), n = local.count
        let c = config.bands.count, s = config.chipSize, plane = s * s
        // The step's chips are all read before its first forward, since the loss's normalizer
        // counts all their masks; they are small next to one micro-batch's activations.
        let x = Tensor([accumulations * n, c, s, s]), target = Tensor([accumulations * n, 1, s, s]), mask = Tensor(target.shape)
        let micros = (0..<accumulations).map { m in
            (x: Tensor([n, c, s, s], viewing: x.data + m * n * c * plane), target: Tensor([n, 1, s, s], viewing: target.data + m * n * plane),
             mask: Tensor([n, 1, s, s], viewing: mask.data + m * n * plane))
        }
        let reduceGradient = network.gradientReady
        let shares = (0..<comm.size).map { r in accumulations * (micro * (r + 1) / comm.size - micro * r / comm.size) }
        events(.started(TrainingSummary(ranks: comm.size, parameters: network.parameters.count, gsf: state.gsf,
                                        startStep: state.step, totalSteps: totalSteps, stepsPerEpoch: config.stepsPerEpoch,
                                        localBatch: shares.min()!...shares.max()!, buckets: reducer.buckets.count,
                                        blasCore: BLAS.coreName, blasThreads: ComputeThreads.count, resumed: resumed)))
        for note in resumeNotes { events(.note(note)) }
        if accumulations > 1 {
            events(.note("accumulate_grad_batches \(accumulations): each step sums the gradients of \(accumulations) micro-batches of \(micro) chips"))
        }
        let started = Date()
        let firstStep = state.step
        var windowLoss = 0.0, windowSteps = 0, windowStart = Date()
        var lastValidated = -1
        // A run stopped during a validation owes it first: an uninterrupted run did it at this step.
        var validationOwed = state.validationPending == true

        while validationOwed || state.step < totalSteps {
            if !validationOwed {
                let step = state.step
                locally {
                    for m in 0..<accumulations {
                        for (j, i) in local.enumerated() {
                            let chip = trainSampler.chip(step: step, index: m * micro + i), k = m * n + j
                            try reader.read(chip, inputs: x.data + k * c * plane, target: target.data + k * plane, mask: mask.data + k * plane)
                        }
                    }
                }
                network.parameters.zeroGrad()
                let signal = stop?() ?? 0
                let counted = try comm.sumAcrossRanks([failure == nil ? Trainer.validPixels(mask) : 0, Double(signal)], failure: failure)
                if counted[1] != 0 { return try stopped() }
                let count = counted[0]
                var lossSum = 0.0
                for (m, batch) in micros.enumerated() {
                    // Gradients are final only in the last micro-batch's backward: the reducer,
                    // which sums each bucket once per step, must not hear of the earlier ones.
                    network.gradientReady = m == accumulations - 1 ? reduceGradient : nil
                    _ = model.forward(batch.x, training: true)
                    lossSum += model.loss(target: batch.target, mask: batch.mask).sum
                    model.backward(target: batch.target, mask: batch.mask, normalizer: count)
                }
                try reducer.finish()
                let totalLoss = try comm.sumAcrossRanks([lossSum], failure: failure)[0]
                guard totalLoss.isFinite, count > 0 else {
                    events(.note("loss is \(totalLoss / count) at step \(step); stopping, the last good checkpoint is kept"))
                    return .diverged(step: step)
                }
                optimizer.step()
                state.step += 1
                let loss = totalLoss / count
                windowLoss += loss
                windowSteps += 1

                let epochEnd = state.step % config.stepsPerEpoch == 0
                if windowSteps == config.logEvery || epochEnd || state.step == totalSteps {
                    let elapsed = Date().timeIntervalSince(windowStart)
                    let tiles = Double(config.batchSize * windowSteps) / max(elapsed, 1e-9)
                    let perStep = Date().timeIntervalSince(started) / Double(state.step - firstStep)
                    let report = StepReport(step: state.step, epoch: epoch(state.step), totalSteps: totalSteps,
                                            loss: windowLoss / Double(windowSteps), lr: optimizer.lr, tilesPerSecond: tiles,
                                            secondsLeft: perStep * Double(totalSteps - state.step))
                    if comm.rank == 0 {
                        locally {
                            try folder.appendMetrics(["step": report.step, "epoch": report.epoch, "train_loss": report.loss,
                                                      "lr": report.lr, "tiles_per_s": report.tilesPerSecond])
                        }
                    }
                    events(.step(report))
                    windowLoss = 0
                    windowSteps = 0
                    windowStart = Date()
                }
                validationOwed = epochEnd || (config.valEvery.map { state.step % $0 == 0 } ?? false)
            }

            let epochEnd = state.step % config.stepsPerEpoch == 0
            var stopEarly = false
            if validationOwed {
                guard let early = try validate(epochEnd: epochEnd) else { return try stopped() }
                stopEarly = early
                validationOwed = false
                lastValidated = state.step
            }
            if epochEnd || state.step % config.checkpointEvery == 0, !(try checkpoint()) { return weightsDiverged() }
            if stopEarly {
                try comm.sumAcrossRanks([], failure: failure)
                return try finished("early stopping: no validation improvement of \(config.earlyStopping.minDelta) "
                    + "in \(config.earlyStopping.patience) validations")
            }
        }
        if lastValidated != state.step {
            guard try validate(epochEnd: false) != nil else { return try stopped() }
        }
        if lastCheckpoint != state.step, !(try checkpoint()) { return weightsDiverged() }
        try comm.sumAcrossRanks([], failure: failure)
        return try finished("reached \(config.maxSteps.map { _ in "max_steps" } ?? "max_epochs") at step \(state.step)")
    }

    /// Training has finished (every rank calls this together): a run with test data tests the
    /// checkpoint first. Rank 0 refines and evaluates; the others wait for it, and any failure
    /// ends every rank alike.
    private func finished(_ why: String) throws -> TrainingOutcome {
        guard !testTargets.isEmpty else { return .finished(why) }
        if comm.rank == 0 {
            locally {
                // best.safetensors when a validation chose one, else the last weights.
                let best = valSampler != nil ? state.bestStep : nil
                _ = try TestPhase.run(testTargets, checkpoint: best == nil ? folder.last : folder.best, step: best ?? state.step,
                                      fold: config.split.map { _ in config.fold }, config: config, folder: folder, events: events)
            }
        }
        try comm.sumAcrossRanks([], failure: failure)
        return .finished(why)
    }

    /// A stop signal reached some rank (every rank calls this together): the state is saved,
    /// unless the checkpoint on disk already holds it, and the run can resume.
    private func stopped() throws -> TrainingOutcome {
        // The signal may have reached one rank only; every rank reports the one that came.
        let signal = try comm.allReduceMax(stop?() ?? 0)
        if lastCheckpoint != state.step, !(try checkpoint()) { return weightsDiverged() }
        return .stopped(signal: signal, step: state.step)
    }

    /// The weights are no longer finite though the loss that led to them was (a step overflowed):
    /// like a non-finite loss, the run stops with the last good checkpoint.
    private func weightsDiverged() -> TrainingOutcome {
        events(.note("weights are not finite after step \(state.step); stopping, the last good checkpoint is kept"))
        return .diverged(step: state.step)
    }

    /// Runs work that only this rank does (reading its chips, rank 0 writing files) and keeps its
    /// first error for the next exchange between ranks, where every rank learns of it and stops
    /// together, instead of this rank leaving the others waiting in a collective.
    private func locally(_ work: () throws -> Void) {
        guard failure == nil else { return }
        do { try work() } catch { failure = error }
    }

    /// The epoch (from 0) in which the step that brought the count to `step` ran.
    func epoch(_ step: Int) -> Int { max(step - 1, 0) / config.stepsPerEpoch }

    /// A validation: the loss over the seed-fixed validation chips, the best checkpoint and, at an
    /// epoch's end, the learning-rate schedule and early stopping, which both follow it. Returns
    /// true when early stopping says to stop, nil when a stop signal came first (the state is as
    /// it was, marked to validate again on resume).
    func validate(epochEnd: Bool) throws -> Bool? {
        guard let sampler = valSampler else { return false }
        guard let valLoss = try validationLoss(sampler) else { return nil }
        keepBest(valLoss: valLoss)
        guard epochEnd else { return false }
        scheduleLearningRate(valLoss: valLoss)
        return stopsEarly(valLoss: valLoss)
    }

    /// The validation loss, split over ranks and summed exactly. The ranks ask after every batch
    /// of chips whether a stop signal came (a validation may take minutes): nil then, with
    /// `validationPending` set.
    private func validationLoss(_ sampler: ChipSampler) throws -> Double? {
        try broadcastBuffers()
        let mine = slice(config.valSamples)
        let c = config.bands.count, s = config.chipSize, plane = s * s
        // Batches of a training micro-batch's size, which the activations' memory is sized for.
        let chunk = max(1, (config.microBatchSize + comm.size - 1) / comm.size)
        // Every rank takes as many rounds as the largest slice needs, so all ask equally often.
        let rounds = ((config.valSamples + comm.size - 1) / comm.size + chunk - 1) / chunk
        var sum = 0.0, count = 0.0
        for round in 0..<rounds {
            let start = mine.lowerBound + round * chunk
            let n = min(chunk, mine.upperBound - start)
            if n > 0 && failure == nil {
                let x = Tensor([n, c, s, s]), target = Tensor([n, 1, s, s]), mask = Tensor([n, 1, s, s])
                locally {
                    for k in 0..<n {
                        try reader.read(sampler.chip(step: 0, index: start + k), inputs: x.data + k * c * plane,
                                        target: target.data + k * plane, mask: mask.data + k * plane)
                    }
                }
                if failure == nil {
                    _ = model.forward(x, training: false)
                    let (ls, lc) = model.loss(target: target, mask: mask)
                    sum += ls
                    count += lc
                }
            }
            if try comm.sumAcrossRanks([Double(stop?() ?? 0)], failure: failure)[0] != 0 {
                state.validationPending = true
                return nil
            }
        }
        let totals = try comm.sumAcrossRanks([sum, count], failure: failure)
        state.validationPending = nil
        // The state now differs from any checkpoint of this step.
        lastCheckpoint = -1
        return totals[0] / max(totals[1], 1)
    }

    /// Logs the validation loss; the lowest so far is saved as best.safetensors.
    private func keepBest(valLoss: Double) {
        let best = state.bestValLoss.map { valLoss < $0 } ?? true
        if best {
            state.bestValLoss = valLoss
            state.bestStep = state.step
            if comm.rank == 0 { locally { try Checkpoint.save(network, to: folder.best, extraMetadata: metadata(valLoss: valLoss)) } }
        }
        if comm.rank == 0 {
            locally { try folder.appendMetrics(["step": state.step, "epoch": epoch(state.step), "val_loss": valLoss]) }
        }
        events(.validated(step: state.step, epoch: epoch(state.step), valLoss: valLoss, best: best))
    }

    /// The next epoch's learning rate, from the configured schedule; the schedule's progress is
    /// part of the state, so that a resumed run continues it.
    private func scheduleLearningRate(valLoss: Double) {
        switch config.lrScheduler.kind {
        case "plateau":
            var schedule = state.plateau ?? Trainer.plateau(config)
            let lr = schedule.step(metric: valLoss, lr: optimizer.lr)
            state.plateau = schedule
            if lr != optimizer.lr { events(.note("learning rate \(optimizer.lr) → \(lr) (validation loss on a plateau)")) }
            optimizer.lr = lr
        case "step":
            // A state saved before the schedule was kept resumes it from the epochs already done.
            var schedule = state.stepLR ?? Trainer.stepLR(config, after: state.step / config.stepsPerEpoch - 1)
            optimizer.lr = schedule.step(lr: optimizer.lr)
            state.stepLR = schedule
        default:
            break
        }
        state.lr = optimizer.lr
    }

    /// Early stopping: true after `patience` validations without an improvement of `min_delta`.
    private func stopsEarly(valLoss: Double) -> Bool {
        if state.earlyBest.map({ valLoss < $0 - config.earlyStopping.minDelta }) ?? true {
            state.earlyBest = valLoss
            state.earlyBad = 0
        } else {
            state.earlyBad += 1
        }
        return state.earlyBad >= config.earlyStopping.patience
    }

    /// Rank 0's BatchNorm running statistics on every rank, as DDP keeps them.
    func broadcastBuffers() throws {
        for t in buffers { try comm.broadcast(t.buffer, root: 0) }
    }

    func metadata(valLoss: Double? = nil) -> [String: String] {
        var m = ["step": "\(state.step)", "epoch": "\(epoch(state.step))"]
        if let valLoss { m["val_loss"] = "\(valLoss)" }
        return m
    }

    /// Rank 0 saves the resume state and last.safetensors (and a step checkpoint with keep_last);
    /// all ranks wait for the outcome, so no rank runs ahead of a checkpoint that failed. Weights
    /// that are not all finite are not saved, so that they never replace the last good state:
    /// false then (on every rank: all hold the same weights).
    func checkpoint() throws -> Bool {
        guard network.parameters.valueBuffer.allSatisfy(\.isFinite) else { return false }
        lastCheckpoint = state.step
        try broadcastBuffers()
        if comm.rank == 0 {
            locally {
                try folder.saveState(network: network, optimizer: optimizer, trainer: state, ranks: comm.size, metadata: metadata())
                if config.keepLast > 0 { try keepStepCheckpoint() }
                try LossCurve.write(metricsFile: folder.metrics, to: folder.file("loss.svg"))
                events(.checkpoint(step: state.step, path: folder.last))
            }
        }
        try comm.sumAcrossRanks([], failure: failure)
        return true
    }

    func keepStepCheckpoint() throws {
        let dir = folder.file("checkpoints")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Checkpoint.save(network, to: (dir as NSString).appendingPathComponent(String(format: "step-%09d.safetensors", state.step)),
                            extraMetadata: metadata())
        let all = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") }.sorted()
        for old in all.dropLast(config.keepLast) { try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(old)) }
    }

    /// The mean over the training scenes of each one's gsf, from chips of its training regions only.
    static func estimateGSF(_ scenes: [Scene], _ regions: [SceneRegions], _ config: TrainingConfig) throws -> Double {
        var values: [Double] = []
        for (scene, r) in zip(scenes, regions) where !r.train.isEmpty {
            if let g = try Statistics.gsf(scene.aspDSM, chipSize: config.chipSize, seed: UInt64(bitPattern: Int64(config.seed)),
                                          minValidFraction: config.minValidFraction, windows: r.train) {
                values.append(g)
            }
        }
        guard !values.isEmpty, values.allSatisfy({ $0 > 0 }) else {
            throw TrainingError("cannot estimate gsf: no \(config.chipSize) px training chip has enough valid asp_dsm pixels; set 'gsf' in the config")
        }
        return values.reduce(0, +) / Double(values.count)
    }

    static func loadInit(_ path: String, into network: any Network, expected: ModelConfig) throws {
        let c = try Checkpoint.readConfig(path)
        guard c.arch == expected.arch, c.bands == expected.bands else {
            throw TrainingError("\(path): a \(c.arch) model for bands \(c.bands) cannot initialize a \(expected.arch) run for bands \(expected.bands)")
        }
        try Checkpoint.load(path, into: network)
    }

    /// The plateau schedule the settings describe, before its first epoch.
    static func plateau(_ config: TrainingConfig) -> ReduceLROnPlateau {
        let s = config.lrScheduler
        return ReduceLROnPlateau(factor: s.factor, patience: s.patience, threshold: s.threshold, cooldown: s.cooldown, minLR: s.minLR)
    }

    /// The step schedule the settings describe, `epochs` epochs in (StepLR keeps nothing else).
    static func stepLR(_ config: TrainingConfig, after epochs: Int = 0) -> StepLR {
        var schedule = StepLR(stepSize: config.lrScheduler.stepSize, gamma: config.lrScheduler.gamma)
        for _ in 0..<max(0, epochs) { _ = schedule.step(lr: 1) }
        return schedule
    }
}

/// Runs `body` on every rank and agrees on the outcome: if it threw anywhere, it throws a
/// `RankFailure` everywhere.
func agreeing<T>(_ comm: Communicator, _ body: () throws -> T) throws -> T {
    let result = Result { try body() }
    var failure: Error?
    if case .failure(let e) = result { failure = e }
    try comm.sumAcrossRanks([], failure: failure)
    return try result.get()
}
