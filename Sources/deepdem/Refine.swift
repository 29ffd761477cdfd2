import ArgumentParser
import Data
import Distributed
import Foundation
import NN
import Primitives

struct Refine: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Refine a scene's DSM with a trained model (tiled, blended, any size).",
        discussion: """
            Overlapping tiles (default stride: half a chip) are predicted in batches and blended \
            with weights that fall to zero at tile edges, so no seams show; every pixel is covered. \
            The output has the input DSM's grid, georeferencing and nodata; memory is bounded by \
            the model and one strip of tiles, not the scene.
            """)

    @Option(help: "A .safetensors checkpoint (from deepdem train or tools/convert_checkpoint.py).")
    var checkpoint: String

    @Option(help: "The scene folder (final_<band>.tif with the checkpoint's bands).")
    var data: String

    @Option(help: "The refined DSM to write (GeoTIFF).")
    var out: String

    @Flag(help: "Print one JSON line (size, seconds, Mpx/s, OpenBLAS kernel and threads, output) instead of the sentence.")
    var json = false

    @Option(parsing: .number, help: "Tile stride in pixels (default: chip size / 2).")
    var stride: Int?

    @Option(parsing: .number, help: "Tiles per forward pass.")
    var batchSize = 8

    @Option(parsing: .number, help: "Threads (default: the cores this process may run on, or OPENBLAS_NUM_THREADS).")
    var threads: Int?

    @Option(help: "Arithmetic of the convolutions' multiplications: fp32, or bf16-mixed (bf16 operands, fp32 sums; needs AVX512_BF16, else fp32 with a note).")
    var precision: Precision = .fp32

    @Flag(help: ArgumentHelp("Test-time augmentation: predict every tile under the 8 symmetries of the square (and both ortho orders when the model has two orthos), map each back, and average.",
                             discussion: "About 8× (16× with two orthos) the time of a plain refinement."))
    var tta = false

    @Option(help: ArgumentHelp("With --tta, also write the per-pixel standard deviation of those predictions (metres; the DSM's grid and nodata).",
                               valueName: "OUT_SIGMA.tif"))
    var uncertainty: String?

    @Flag(help: "Write a Cloud-Optimized GeoTIFF.")
    var cog = false

    @Option(help: "Also write a hillshade of the refined DSM to this PNG.")
    var hillshade: String?

    @Flag(help: "Replace existing outputs.")
    var overwrite = false

    func run() {
        let comm = RefineRanks.communicator()
        var refining = false
        do {
            try refine(comm, refining: &refining)
            try comm.finalize()
        } catch {
            // Before the tiles, every rank meets the same error and rank 0 says it; while refining,
            // the rank that failed does (its exit ends the job under mpirun and srun).
            if comm.rank == 0 { fail(error) }
            if refining { fail("rank \(comm.rank): \(error)") }
            // Rank 0 says it; the first rank to exit makes the launcher (Hydra, srun) end the others,
            // so this one gives it time to.
            Thread.sleep(forTimeInterval: 2)
            Foundation.exit(1)
        }
    }

    func refine(_ comm: Communicator, refining: inout Bool) throws {
        if let threads, threads < 1 { throw CLIError("--threads \(threads): needs at least 1 thread") }
        if uncertainty != nil && !tta { throw CLIError("--uncertainty is the spread of --tta's predictions: give --tta too") }
        if let uncertainty, URL(fileURLWithPath: uncertainty).standardized == URL(fileURLWithPath: out).standardized {
            throw CLIError("--uncertainty \(uncertainty): is also --out")
        }
        PartialFiles.removeOnSignals()
        try InputGuard.check(files: [out] + [hillshade, uncertainty].compactMap { $0 }, reading: [checkpoint] + InputGuard.sceneFiles(data))
        // Beyond this a batch's buffers (chips × bands × chip_size²) no longer fit any memory.
        guard (1...1024).contains(batchSize) else { throw CLIError("--batch-size \(batchSize): must be between 1 and 1024") }
        if let hillshade { try RasterWriter.checkDestination(hillshade, overwrite: overwrite) }
        if let threads { ComputeThreads.set(threads) }
        let speaks = comm.rank == 0
        if let notice = try ConvChoice.apply(), speaks { FileHandle.standardError.write(Data("\(notice)\n".utf8)) }
        let (running, note) = precision.onThisCPU
        Precision.forNewLayers = running
        if let note, speaks { FileHandle.standardError.write(Data("\(note)\n".utf8)) }
        // An option's range is checked before the weights are read, against the settings alone.
        let config = try Checkpoint.readConfig(checkpoint)
        if let stride, !(1...config.chipSize).contains(stride) {
            throw CLIError("--stride \(stride): must be between 1 and the chip size (\(config.chipSize))")
        }
        let refinement = try Refinement(checkpoint: checkpoint)
        let scene = try refinement.scene(data)
        var tiler = Tiler(chipSize: config.chipSize, stride: stride, batchSize: batchSize,
                          format: cog ? .cog : .geoTIFF, overwrite: overwrite)
        tiler.threads = ComputeThreads.count
        let tileRows = Tiler.origins(length: scene.grid.height, chip: tiler.chipSize, stride: tiler.stride).count
        if comm.size > tileRows {
            throw CLIError("\(comm.size) ranks for \(tileRows) rows of tiles of \(data): every rank needs a row; run at most \(tileRows)")
        }
        let t0 = Date()
        refining = true
        if speaks {
            try ProgressLine("refine").run { progress in
                try refinement.refine(scene, tiler: tiler, output: out, tta: tta, uncertainty: uncertainty, communicator: comm,
                                      progress: progress)
            }
        } else {
            try refinement.refine(scene, tiler: tiler, output: out, tta: tta, uncertainty: uncertainty, communicator: comm)
            return
        }
        refining = false
        let seconds = Date().timeIntervalSince(t0)
        let mpix = Double(scene.grid.width * scene.grid.height) / 1e6
        if !json {
            Console.line(String(format: "refined %@ (%d×%d, %.1f Mpx) in %.1f s (%.2f Mpx/s, OpenBLAS %@ × %d%@) → %@",
                                data, scene.grid.width, scene.grid.height, mpix, seconds, mpix / seconds,
                                BLAS.coreName, ComputeThreads.count, comm.size > 1 ? " × \(comm.size) ranks" : "", out))
        }
        if let uncertainty, !json {
            Console.line("uncertainty: standard deviation of \(refinement.augmentations.count) predictions per pixel → \(uncertainty)")
        }
        let shade = try hillshade.map { try Hillshade.write(dem: out, png: $0, overwrite: overwrite) }
        if let hillshade, let shade, !json { Console.line("hillshade (\(shade.width)×\(shade.height)) → \(hillshade)") }
        if json {
            var report: [String: Any] = ["width": scene.grid.width, "height": scene.grid.height, "seconds": seconds,
                                         "mpx_per_s": mpix / seconds, "kernel": BLAS.coreName, "threads": ComputeThreads.count,
                                         "precision": running.rawValue, "ranks": comm.size,
                                         "output": out]
            if let hillshade { report["hillshade"] = hillshade }
            if tta { report["tta"] = refinement.augmentations.count }
            if let uncertainty { report["uncertainty"] = uncertainty }
            let line = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .withoutEscapingSlashes])
            Console.line(String(decoding: line, as: UTF8.self))
        }
    }
}

extension Precision: ExpressibleByArgument {}
