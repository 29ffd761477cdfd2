// A libFuzzer target over everything that reads a checkpoint (see fuzz/README.md). It is compiled
// into one module with NN's sources, so it calls NN's API without an import.
import Foundation

private let path = "/dev/shm/deepdem-fuzz-\(getpid()).safetensors"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: bytes, count: count)) else { fatalError("cannot write \(path)") }
    _ = try? SafeTensors(contentsOf: path)
    _ = try? Checkpoint.inspect(path)
    guard let config = try? Checkpoint.readConfig(path) else { return 0 }
    // What the reader accepts must build; small U-Nets only, to keep the executions fast.
    if config.arch == "unet", config.chipSize > 64 || config.unet!.maxFilterDepth > 64 { return 0 }
    let network: any Network
    do { network = try makeNetwork(config, seed: nil) } catch { fatalError("readConfig accepted what makeNetwork refuses: \(error)") }
    _ = try? Checkpoint.load(path, into: network)
    return 0
}
