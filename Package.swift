// swift-tools-version:6.0
import Foundation
import PackageDescription

// The commit `deepdem --version` names: the Makefile and tools/dist.sh set DEEPDEM_COMMIT from
// git; a build without it (or with anything but a plain revision name) says "unknown".
let commit = ProcessInfo.processInfo.environment["DEEPDEM_COMMIT"]
    .flatMap { $0.range(of: "^[0-9A-Za-z._-]{1,64}$", options: .regularExpression) != nil ? $0 : nil } ?? "unknown"
// The MPI that CMPI compiles and links against, chosen at build time (`make build MPI=mpich`
// sets DEEPDEM_MPI): the two are not ABI-compatible, so one binary is for one of them.
// pkg-config `ompi-c` and `mpich` are each MPI's own; `mpi`/`mpi-c` follow Debian's alternatives.
let mpi: (pkgConfig: String, apt: [String])
switch Context.environment["DEEPDEM_MPI"] ?? "openmpi" {
case "openmpi": mpi = ("ompi-c", ["libopenmpi-dev", "openmpi-bin"])
case "mpich": mpi = ("mpich", ["libmpich-dev", "mpich"])
case let other:
    // One line, where fatalError would add a backtrace.
    FileHandle.standardError.write(Data("DEEPDEM_MPI is '\(other)'; it must be openmpi or mpich\n".utf8))
    exit(1)
}

let package = Package(
    name: "DeepDEM",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "deepdem", targets: ["deepdem"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Data", targets: ["Data"]),
        .library(name: "Distributed", targets: ["Distributed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: mpi.pkgConfig,
                       providers: [.apt(mpi.apt)]),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CGDAL", path: "Sources/CGDAL", pkgConfig: "gdal",
                       providers: [.apt(["libgdal-dev", "gdal-bin"])]),
        // What NN and Data share without importing each other: the random generator and the
        // write-under-a-temporary-name-then-rename of every output.
        .target(name: "Primitives"),
        .target(name: "CBuildInfo", cSettings: [.define("DEEPDEM_COMMIT", to: "\"\(commit)\"")]),
        // The bf16 GEMM of precision bf16-mixed (AVX512_BF16), compiled for any x86-64 and
        // entered only on CPUs that have it.
        .target(name: "CBF16", path: "Sources/CBF16"),
        .target(name: "NN", dependencies: ["CBLAS", "CBF16", "Primitives"]),
        .target(name: "Data", dependencies: ["CGDAL", "Primitives"]),
        // TensorBoard's event files: the Event and Summary messages (generated from
        // tensorboard.proto by tools/generate-protos.sh and committed) in CRC-framed records.
        .target(name: "TensorBoard", dependencies: ["Primitives", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["tensorboard.proto"]),
        .target(name: "Distributed", dependencies: ["CMPI", "NN", "Data", "Primitives", "TensorBoard"]),
        .executableTarget(name: "deepdem", dependencies: [
            "NN", "Data", "Distributed", "Primitives", "CBLAS", "CBuildInfo",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // Multi-rank checks of the communicator, run by DistributedTests under mpirun.
        .executableTarget(name: "mpi-probe", dependencies: ["Distributed", "NN", "Primitives"], path: "Tests/MPIProbe"),
        // Every route by which the layers split work over threads, at several thread counts,
        // run by NNTests once per OpenBLAS kernel.
        .executableTarget(name: "thread-identity", dependencies: ["NN", "Primitives"], path: "Tests/ThreadIdentity"),
        // Blocking vs bucketed gradient all-reduce on the models' layouts (bench/allreduce/run.sh).
        .executableTarget(name: "allreduce-bench", dependencies: ["Distributed", "NN", "Primitives"], path: "bench/allreduce",
                          exclude: ["run.sh"]),
        // Training-step tiles/s and GFLOPS of both architectures, 1 process or under mpirun (bench/README.md).
        .executableTarget(name: "train-bench", dependencies: ["NN", "CBLAS", "Distributed", "Primitives"], path: "bench/train-step"),
        .testTarget(name: "NNTests", dependencies: ["NN", "Primitives"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DataTests", dependencies: ["Data", "Primitives"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "NN", "Data"]),
        .testTarget(name: "TensorBoardTests", dependencies: ["TensorBoard", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .testTarget(name: "CommandTests", dependencies: ["NN", "Data", "Primitives"]),
    ]
)
