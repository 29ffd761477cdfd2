import Foundation
import NN
import XCTest

/// Adam against trajectories torch.optim computed (Fixtures/optim.safetensors, which also holds
/// SGD's, from before SGD was removed as nothing could choose it): a
/// 37-element parameter split over two tensors, six steps with given gradients of widely varying
/// size, one element never getting a gradient and one missing a step.
final class OptimizerTests: XCTestCase {
    struct Fixture {
        let file: SafeTensors
        let p0: [Float]
        let grads: [Float]
        let steps: Int
        let cases: [String: [String: Any]]
    }

    static func fixture() throws -> Fixture {
        let file = try SafeTensors(contentsOf: GoldenTests.fixture("optim"))
        let cases = try JSONSerialization.jsonObject(with: Data(file.metadata["optimizers"]!.utf8)) as! [String: [String: Any]]
        return Fixture(file: file, p0: try file.floats("p0"), grads: try file.floats("grads"),
                       steps: file.info("grads")!.shape[0], cases: cases)
    }

    /// Two parameters, so the flat buffers' reversed layout is exercised; values in fixture order.
    func makeParameters(_ p0: [Float]) -> (ParameterSet, [Parameter]) {
        let a = Parameter([5, 4]), b = Parameter([17])
        let set = ParameterSet([("a", a), ("b", b)])
        for i in 0..<20 { a.value[i] = p0[i] }
        for i in 0..<17 { b.value[i] = p0[20 + i] }
        return (set, [a, b])
    }

    func flat(_ ps: [Parameter]) -> [Float] { ps[0].value.array + ps[1].value.array }

    func setGrads(_ ps: [Parameter], _ g: ArraySlice<Float>) {
        let g = Array(g)
        for i in 0..<20 { ps[0].grad[i] = g[i] }
        for i in 0..<17 { ps[1].grad[i] = g[20 + i] }
    }

    func make(_ c: [String: Any], _ set: ParameterSet) -> any Optimizer {
        let betas = c["betas"] as! [Double]
        return Adam(set, lr: c["lr"] as! Double, betas: (betas[0], betas[1]), eps: c["eps"] as! Double,
                    weightDecay: c["weight_decay"] as! Double)
    }

    func assertClose(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for i in 0..<min(a.count, b.count) where abs(a[i] - b[i]) > 2e-6 * max(1, abs(b[i])) {
            XCTFail("\(what): element \(i) is \(a[i]), PyTorch \(b[i])", file: file, line: line)
            return
        }
    }

    func testTrajectoriesMatchPyTorch() throws {
        let f = try Self.fixture()
        let n = f.p0.count
        let adam = f.cases.filter { $0.value["kind"] as! String == "adam" }
        XCTAssertEqual(adam.count, 2)
        for (name, c) in adam {
            let (set, ps) = makeParameters(f.p0)
            let opt = make(c, set)
            let expected = try f.file.floats("\(name).params")
            var moved = false
            for t in 0..<f.steps {
                setGrads(ps, f.grads[(t * n)..<((t + 1) * n)])
                opt.step()
                let want = Array(expected[(t * n)..<((t + 1) * n)])
                assertClose(flat(ps), want, "\(name) step \(t + 1)")
                moved = moved || want != f.p0
            }
            XCTAssertTrue(moved)
            XCTAssertEqual(opt.state.step, f.steps)
            // PyTorch's state tensors, in the fixture's element order.
            let reorder = { (b: [Float]) in Array(b[17..<37]) + Array(b[0..<17]) }
            for (key, values) in opt.state.buffers {
                assertClose(reorder(values), try f.file.floats("\(name).\(key)"), "\(name) \(key)")
            }
            XCTAssertEqual(Set(opt.state.buffers.keys),
                           Set(f.file.tensors.map(\.name).filter { $0.hasPrefix(name + ".") && !$0.hasSuffix(".params") }
                               .map { String($0.dropFirst(name.count + 1)) }))
        }
    }

    /// Stopping after three steps, saving the state and resuming in a fresh optimizer gives the
    /// uninterrupted trajectory exactly.
    func testResumeFromSavedState() throws {
        let f = try Self.fixture()
        let n = f.p0.count
        let dir = NSTemporaryDirectory() + "optimizer-tests-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["adam", "adam_wd"] {
            let c = f.cases[name]!
            let (setA, a) = makeParameters(f.p0)
            let straight = make(c, setA)
            for t in 0..<f.steps {
                setGrads(a, f.grads[(t * n)..<((t + 1) * n)])
                straight.step()
            }
            let (setB, b) = makeParameters(f.p0)
            var first = make(c, setB)
            for t in 0..<3 {
                setGrads(b, f.grads[(t * n)..<((t + 1) * n)])
                first.step()
            }
            let path = dir + "/\(name).safetensors"
            try first.state.write(to: path, extraMetadata: ["epoch": "2"])
            let (state, metadata) = try OptimizerState.read(path)
            XCTAssertEqual(state, first.state)
            XCTAssertEqual(metadata, ["epoch": "2"])
            first = make(c, setB)
            try first.restore(state)
            for t in 3..<f.steps {
                setGrads(b, f.grads[(t * n)..<((t + 1) * n)])
                first.step()
            }
            XCTAssertEqual(flat(b), flat(a), name)
        }
    }

    func testRestoreRejectsMismatchedState() throws {
        let (set, _) = makeParameters([Float](repeating: 0, count: 37))
        let adam = Adam(set, lr: 1e-3)
        XCTAssertThrowsError(try adam.restore(OptimizerState(kind: "sgd", step: 1, buffers: [:]))) {
            XCTAssertEqual("\($0)", "optimizer state is for sgd, this run uses adam")
        }
        let short = OptimizerState(kind: "adam", step: 1, buffers: ["exp_avg": [0], "exp_avg_sq": [0]])
        XCTAssertThrowsError(try adam.restore(short)) {
            XCTAssertEqual("\($0)", "optimizer state: buffer 'exp_avg' missing or not of 37 values (a different model?)")
        }
        XCTAssertEqual(adam.stepCount, 0)
        let path = NSTemporaryDirectory() + "not-optimizer-\(getpid()).safetensors"
        defer { unlink(path) }
        var w = SafeTensorsWriter()
        w.add("exp_avg", shape: [1], floats: [0])
        try w.write(to: path)
        XCTAssertThrowsError(try OptimizerState.read(path)) {
            XCTAssertEqual("\($0)", "\(path): not an optimizer state (needs 'optimizer' and 'step' metadata)")
        }
    }
}
