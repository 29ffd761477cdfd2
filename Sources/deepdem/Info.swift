import ArgumentParser
import Data
import Foundation
import NN
import Primitives

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a checkpoint holds (model configuration, parameter count, tensors), or how deepdem made a GeoTIFF.",
        discussion: """
            A GeoTIFF that deepdem wrote carries its provenance as metadata (gdalinfo lists it under \
            "Metadata:"): the deepdem version and commit and the command; a refined DSM also the \
            checkpoint, its SHA-256, arch, bands, chip size and gsf.
            """)

    @Argument(help: "A .safetensors checkpoint, or a GeoTIFF deepdem wrote.")
    var checkpoint: String

    func run() throws {
        guarded {
            if isTIFF(checkpoint) { return try showProvenance(checkpoint) }
            let contents = try Checkpoint.inspect(checkpoint)
            let config = contents.config
            // Loading into the network the configuration names checks every tensor's presence,
            // shape and data, so `info` also says whether the file is usable.
            let network = try makeNetwork(config, seed: nil)
            try Checkpoint.load(checkpoint, into: network)

            var rows: [(String, String)] = [
                ("checkpoint", checkpoint),
                ("architecture", config.arch),
                ("bands", config.bands.joined(separator: ", ")),
                ("target", config.target),
                ("chip size", "\(config.chipSize) px"),
                ("gsf", "\(config.gsf)"),
            ]
            if let u = config.unet {
                rows.append(("unet", "n_input_channels \(u.nInputChannels), depth \(u.depth), start_kernel \(u.startKernel), "
                    + "max_filter_depth \(u.maxFilterDepth), do_BN \(u.doBN), bias_conv_layer \(u.biasConvLayer), "
                    + "outer_skip \(u.outerSkip), outer_skip_BN \(u.outerSkipBN), up_mode \(u.upMode)"))
            }
            if config.orthoStandardization != .none {
                rows.append(("ortho standardization", "\(config.orthoStandardization)"))
            }
            if let e = config.encoder {
                rows.append(("encoder", "\(e.name), in_channels \(e.inChannels), decoder_channels \(e.decoderChannels)"))
            }
            let buffers = contents.tensors.count - network.parameters.parameters.count
            rows.append(("parameters", "\(grouped(network.parameters.count)) in \(network.parameters.parameters.count) tensors"
                + (buffers > 0 ? " (and \(buffers) BatchNorm buffers)" : "")))
            for key in contents.metadata.keys.sorted() {
                rows.append((key, abbreviated(contents.metadata[key]!)))
            }
            let width = rows.map(\.0.count).max()!
            for (key, value) in rows { print(oneLine(key).padding(toLength: width + 2, withPad: " ", startingAt: 0) + oneLine(value)) }

            print("")
            let shapes = contents.tensors.map { "[" + $0.shape.map(String.init).joined(separator: ", ") + "]" }
            let nameWidth = max(6, contents.tensors.map(\.name.count).max() ?? 0)
            print("tensor".padding(toLength: nameWidth + 2, withPad: " ", startingAt: 0) + "dtype  shape")
            for (t, shape) in zip(contents.tensors, shapes) {
                print(t.name.padding(toLength: nameWidth + 2, withPad: " ", startingAt: 0)
                    + t.dtype.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0) + shape)
            }
        }
    }

    /// TIFF's and BigTIFF's first four bytes, in either byte order; a safetensors file starts with
    /// its header's length instead.
    func isTIFF(_ path: String) -> Bool {
        // Anything but a readable regular file (a FIFO would block the open) is left to the
        // checkpoint reader, whose errors name the problem.
        let type = (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
        guard type == .typeRegular, let file = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? file.close() }
        let magic = [UInt8]((try? file.read(upToCount: 4)) ?? nil ?? Data())
        return [[0x49, 0x49, 0x2A, 0x00], [0x4D, 0x4D, 0x00, 0x2A], [0x49, 0x49, 0x2B, 0x00], [0x4D, 0x4D, 0x00, 0x2B]]
            .contains(magic)
    }

    func showProvenance(_ path: String) throws {
        let items = try Provenance.read(path)
        guard !items.isEmpty else { throw CLIError("\(path): has no deepdem metadata (deepdem did not write it)") }
        let raster = try Raster(path: path)
        var rows = [("raster", path), ("size", "\(raster.grid.width) × \(raster.grid.height) px")]
        for key in items.keys.sorted() {
            let name = key.dropFirst(Provenance.prefix.count).lowercased().replacingOccurrences(of: "_", with: " ")
            rows.append((name, items[key]!))
        }
        let width = rows.map(\.0.count).max()!
        for (key, value) in rows { print(oneLine(key).padding(toLength: width + 2, withPad: " ", startingAt: 0) + oneLine(value)) }
    }

    func grouped(_ n: Int) -> String {
        var digits = Array(String(n)), out = ""
        while digits.count > 3 {
            out = "," + String(digits.suffix(3)) + out
            digits.removeLast(3)
        }
        return String(digits) + out
    }

    /// Metadata values can be long (a run's settings as JSON); one line each keeps the table readable.
    func abbreviated(_ value: String) -> String {
        value.count > 100 ? String(value.prefix(97)) + "..." : value
    }
}
