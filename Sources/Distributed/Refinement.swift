import Data
import Foundation
import NN

/// A checkpoint ready to refine scenes (docs/ARCHITECTURE.md, A refinement): tiles of the scene
/// through `ResidualModel` in inference mode, blended by `Tiler`. `deepdem refine` and a run's
/// test phase both refine through it, so a test region holds what `refine` would write.
public struct Refinement {
    public let checkpoint: String
    public let config: ModelConfig
    private let model: ResidualModel

    /// Reads the checkpoint's settings and builds and loads its network.
    public init(checkpoint: String) throws {
        config = try Checkpoint.readConfig(checkpoint)
        let network = try makeNetwork(config, seed: nil)
        try Checkpoint.load(checkpoint, into: network)
        model = ResidualModel(network: network, gsf: Float(config.gsf))
        self.checkpoint = checkpoint
    }

    /// Opens `folder` with the checkpoint's bands (no target).
    public func scene(_ folder: String) throws -> Scene {
        try Scene(folder: folder, bands: config.bands, target: nil)
    }

    /// Refines all of `scene` into the GeoTIFF `output`, tiled as `tiler` says; `progress` gets
    /// the finished fraction.
    public func refine(_ scene: Scene, tiler: Tiler, output: String, progress: ((Double) -> Void)? = nil) throws {
        let c = config.bands.count, s = config.chipSize, plane = s * s
        var batches: [Int: Tensor] = [:]
        // The tiles' orthos are standardized as the checkpoint's model was trained.
        var tiler = tiler
        tiler.orthoStandardization = config.orthoStandardization
        try tiler.run(scene: scene, output: output, predict: { inputs, count, outputs in
            let x = batches[count] ?? Tensor([count, c, s, s])
            batches[count] = x
            x.data.update(from: inputs, count: count * c * plane)
            let refined = model.forward(x, training: false)
            // Inputs are finite (nodata is filled), so a NaN or infinite height comes from the
            // model: written, it would pass for nodata or for a height.
            if (0..<count * plane).contains(where: { !refined.data[$0].isFinite }) {
                throw DataError(checkpoint, "the model gives NaN or infinite heights on \(scene.folder) (gsf \(config.gsf)); "
                    + "it cannot refine this scene, and nothing was written")
            }
            outputs.update(from: refined.data, count: count * plane)
        }, progress: progress)
    }
}
