import Data
import Foundation
import NN

/// A checkpoint ready to refine scenes (docs/ARCHITECTURE.md, A refinement): tiles of the scene
/// through `ResidualModel` in inference mode, blended by `Tiler`. `deepdem refine` and a run's
/// test phase both refine through it, so a test region holds what `refine` would write.
public struct Refinement {
    public let checkpoint: String
    public let config: ModelConfig
    /// What every refined GeoTIFF says of the model that made it (`Provenance`).
    public let provenance: [String: String]
    private let model: ResidualModel

    /// Reads the checkpoint's settings and builds and loads its network.
    public init(checkpoint: String) throws {
        config = try Checkpoint.readConfig(checkpoint)
        let network = try makeNetwork(config, seed: nil)
        try Checkpoint.load(checkpoint, into: network)
        model = ResidualModel(network: network, gsf: Float(config.gsf))
        self.checkpoint = checkpoint
        let p = Provenance.prefix
        provenance = [p + "CHECKPOINT": checkpoint, p + "CHECKPOINT_SHA256": try SHA256.hex(ofFile: checkpoint),
                      p + "ARCH": config.arch, p + "BANDS": config.bands.joined(separator: ","),
                      p + "CHIP_SIZE": "\(config.chipSize)", p + "GSF": "\(config.gsf)"]
    }

    /// Opens `folder` with the checkpoint's bands (no target).
    public func scene(_ folder: String) throws -> Scene {
        try Scene(folder: folder, bands: config.bands, target: nil)
    }

    /// The predictions test-time augmentation averages: the 8 symmetries of the square, each with
    /// the orthos in both orders when the model has both (it was trained with them swapped).
    public var augmentations: [(symmetry: SquareSymmetry, swapOrthos: Bool)] {
        let swaps = config.bands.contains(Band.ortho1) && config.bands.contains(Band.ortho2) ? [false, true] : [false]
        return SquareSymmetry.all.flatMap { g in swaps.map { (g, $0) } }
    }

    /// Refines all of `scene` into the GeoTIFF `output`, tiled as `tiler` says; `progress` gets
    /// the finished fraction. With `tta`, every tile's prediction is the mean over `augmentations`,
    /// each mapped back, and `uncertainty` (when given) receives their standard deviation, blended
    /// across tiles as the heights are. With a communicator of several ranks, the ranks share
    /// the rows of tiles and rank 0 writes the outputs (`Tiler.Ranks`), byte for byte those of one
    /// process; every rank calls this with the same arguments.
    public func refine(_ scene: Scene, tiler: Tiler, output: String, tta: Bool = false, uncertainty: String? = nil,
                       communicator: Communicator? = nil, progress: ((Double) -> Void)? = nil) throws {
        precondition(tta || uncertainty == nil, "an uncertainty map needs test-time augmentation")
        let c = config.bands.count, s = config.chipSize, plane = s * s
        let views = tta ? augmentations : [(symmetry: SquareSymmetry.all[0], swapOrthos: false)]
        let orthos = [config.bands.firstIndex(of: Band.ortho1), config.bands.firstIndex(of: Band.ortho2)]
        var batches: [Int: Tensor] = [:]
        var predictions: [Float] = []
        // The tiles' orthos are standardized as the checkpoint's model was trained.
        var tiler = tiler
        tiler.orthoStandardization = config.orthoStandardization
        if let comm = communicator, comm.size > 1 {
            tiler.ranks = Tiler.Ranks(rank: comm.rank, size: comm.size) { row, owner in
                if comm.rank == 0 { try comm.receive(row, from: owner) } else { try comm.send(UnsafeBufferPointer(row), to: 0) }
            }
        }
        tiler.metadata.merge(provenance, uniquingKeysWith: { $1 })
        if tta { tiler.metadata[Provenance.prefix + "TTA"] = "\(views.count) predictions per tile (symmetries of the square"
                 + (views.count > 8 ? " × both ortho orders)" : ")") }
        try tiler.run(scene: scene, outputs: [output] + (uncertainty.map { [$0] } ?? []), predict: { inputs, count, outputs in
            let x = batches[count] ?? Tensor([count, c, s, s])
            batches[count] = x
            if predictions.count < views.count * count * plane { predictions = [Float](repeating: 0, count: views.count * count * plane) }
            for (v, view) in views.enumerated() {
                for b in 0..<count {
                    for channel in 0..<c {
                        var from = channel
                        if view.swapOrthos, let o1 = orthos[0], let o2 = orthos[1] { from = channel == o1 ? o2 : (channel == o2 ? o1 : channel) }
                        view.symmetry.apply(inputs + (b * c + from) * plane, into: x.data + (b * c + channel) * plane, side: s)
                    }
                }
                let refined = model.forward(x, training: false)
                // Inputs are finite (nodata is filled), so a NaN or infinite height comes from the
                // model: written, it would pass for nodata or for a height.
                if (0..<count * plane).contains(where: { !refined.data[$0].isFinite }) {
                    throw DataError(checkpoint, "the model gives NaN or infinite heights on \(scene.folder) (gsf \(config.gsf)); "
                        + "it cannot refine this scene, and nothing was written")
                }
                predictions.withUnsafeMutableBufferPointer { p in
                    for b in 0..<count {
                        view.symmetry.inverse(refined.data + b * plane, into: p.baseAddress! + (v * count + b) * plane, side: s)
                    }
                }
            }
            // Mean and standard deviation over the views, in view order: the same bits at any thread count.
            let n = Double(views.count), layer = count * plane
            for i in 0..<layer {
                var sum = 0.0
                for v in 0..<views.count { sum += Double(predictions[v * layer + i]) }
                let mean = sum / n
                outputs[i] = Float(mean)
                if uncertainty != nil {
                    var squares = 0.0
                    for v in 0..<views.count { let d = Double(predictions[v * layer + i]) - mean; squares += d * d }
                    outputs[layer + i] = Float((squares / n).squareRoot())
                }
            }
        }, progress: progress)
    }
}
