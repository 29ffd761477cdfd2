import Foundation
import XCTest

/// `deepdem --version`: what a bug report and a cluster's modules need to know of the binary.
final class VersionCommandTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    func version(kernels: String) throws -> [String] {
        let output = try runDeepDEM(["--version"], launcher: ["/usr/bin/env", "OPENBLAS_CORETYPE=\(kernels)"])
        XCTAssertEqual(output.status, 0, output.stderr)
        XCTAssertEqual(output.stderr, "")
        return output.stdout.split(separator: "\n").map(String.init)
    }

    /// The commit is the one the build was told (the Makefile sets DEEPDEM_COMMIT for the build
    /// and `swift test` passes it on to this process), and it names this checkout's HEAD.
    func testNamesTheReleaseAndTheCommitItWasBuiltFrom() throws {
        let first = try XCTUnwrap(try version(kernels: "Haswell").first)
        let match = try XCTUnwrap(first.wholeMatch(of: /deepdem (\d+)\.(\d+)\.(\d+) \(commit ([^)]+)\)/), first)
        let commit = String(match.output.4)
        let told = ProcessInfo.processInfo.environment["DEEPDEM_COMMIT"] ?? ""
        XCTAssertEqual(commit, told.isEmpty ? "unknown" : told)
        guard commit != "unknown" else { return }
        let head = try runProcess("git", ["-C", Self.repository.path, "rev-parse", "HEAD"])
        XCTAssertEqual(head.status, 0, head.stderr)
        let hash = try XCTUnwrap(commit.split(separator: "-").first { $0.count >= 7 && $0.allSatisfy(\.isHexDigit) }, commit)
        XCTAssertTrue(head.stdout.hasPrefix(String(hash)), "\(commit) is not HEAD \(head.stdout)")
    }

    /// The MPI is the one whose headers pkg-config gives the build, at that version.
    func testNamesTheMPIItWasCompiledFor() throws {
        let line = try XCTUnwrap(try version(kernels: "Haswell").first { $0.hasPrefix("MPI: ") })
        let match = try XCTUnwrap(line.wholeMatch(of: /MPI: built for (Open MPI|MPICH) (\S+)/), line)
        let package = match.output.1 == "MPICH" ? "mpich" : "ompi-c"
        let installed = try runProcess("pkg-config", ["--modversion", package])
        XCTAssertEqual(installed.status, 0, installed.stderr)
        XCTAssertEqual(String(match.output.2), installed.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The OpenBLAS kernels are those of this run, not of the build: forcing another family shows it.
    func testNamesTheOpenBLASKernelsInUse() throws {
        for kernels in ["Haswell", "Sandybridge"] {
            XCTAssertEqual(try version(kernels: kernels).last, "OpenBLAS: \(kernels) kernels")
        }
    }
}
