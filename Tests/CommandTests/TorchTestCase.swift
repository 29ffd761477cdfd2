import Foundation
import XCTest

/// What the tests that run tools/convert_checkpoint.py under real PyTorch share: the Python that
/// has torch (else the test is skipped, as in CI), a fresh folder per test, the converter.
class TorchTestCase: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let converter = repository.appendingPathComponent("tools/convert_checkpoint.py").path

    /// The first of /work/venv/bin/python and python3 that imports what the converter needs.
    static let python: Result<String, Error> = {
        let required = "import torch, segmentation_models_pytorch, safetensors"
        for candidate in ["/work/venv/bin/python", "python3"] {
            if let run = try? runProcess(candidate, ["-c", required]), run.status == 0 { return .success(candidate) }
        }
        return .failure(XCTSkip("needs a Python with torch, segmentation_models_pytorch and safetensors "
                                + "(tried /work/venv/bin/python and python3; CI installs no torch)"))
    }()

    var folder: URL!

    override func setUpWithError() throws {
        _ = try TorchTestCase.python.get()
        folder = try makeCommandFolder()
    }

    override func tearDownWithError() throws { if let folder { try? FileManager.default.removeItem(at: folder) } }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    func python(_ arguments: [String]) throws -> DeepDEMOutput {
        try runProcess(try TorchTestCase.python.get(), arguments,
                       environment: ["PYTHONPATH": TorchTestCase.repository.appendingPathComponent("tools").path])
    }

    func convert(_ arguments: [String]) throws -> DeepDEMOutput { try python([TorchTestCase.converter] + arguments) }
}
