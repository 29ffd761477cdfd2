import Foundation
import NN
import XCTest

/// ReduceLROnPlateau and StepLR against the rates torch.optim.lr_scheduler produced for the same
/// metric sequence (Fixtures/optim.safetensors): thresholds in both modes, cooldown, min_lr, the
/// eps rule, and a NaN metric.
final class ScheduleTests: XCTestCase {
    func schedules() throws -> (metrics: [Float], cases: [String: [String: Any]]) {
        let file = try SafeTensors(contentsOf: GoldenTests.fixture("optim"))
        let cases = try JSONSerialization.jsonObject(with: Data(file.metadata["schedules"]!.utf8)) as! [String: [String: Any]]
        return (try file.floats("metrics"), cases)
    }

    /// The fixture writes doubles as strings in their shortest round-trip form, which Swift parses exactly.
    func doubles(_ v: Any?) -> [Double] { (v as! [String]).map { Double($0)! } }
    func double(_ v: Any?) -> Double { Double(v as! String)! }

    func plateau(_ s: [String: Any]) -> ReduceLROnPlateau {
        ReduceLROnPlateau(factor: double(s["factor"]), patience: s["patience"] as! Int, threshold: double(s["threshold"]),
                          thresholdMode: .init(rawValue: s["threshold_mode"] as! String)!, cooldown: s["cooldown"] as! Int,
                          minLR: double(s["min_lr"]), eps: double(s["eps"]))
    }

    func testPlateauMatchesPyTorch() throws {
        let (metrics, cases) = try schedules()
        XCTAssertTrue(metrics.contains { $0.isNaN })
        let plateaus = cases.filter { $0.value["kind"] as! String == "plateau" }
        XCTAssertEqual(plateaus.count, 3)
        for (name, c) in plateaus {
            let settings = c["settings"] as! [String: Any]
            var sched = plateau(settings)
            var lr = double(settings["lr"])
            let lrs = doubles(c["lrs"]), bad = c["num_bad_epochs"] as! [Int], cooldown = c["cooldown_counter"] as! [Int]
            for (i, m) in metrics.enumerated() {
                lr = sched.step(metric: Double(m), lr: lr)
                XCTAssertEqual(lr, lrs[i], "\(name) epoch \(i + 1)")
                XCTAssertEqual(sched.numBadEpochs, bad[i], "\(name) epoch \(i + 1)")
                XCTAssertEqual(sched.cooldownCounter, cooldown[i], "\(name) epoch \(i + 1)")
            }
            XCTAssertEqual(sched.best, Double(c["best"] as! String), name)
            XCTAssertEqual(sched.lastEpoch, c["last_epoch"] as! Int, name)
        }
    }

    /// Saving the schedule as JSON mid-run and continuing from the decoded copy changes nothing.
    func testPlateauResumesFromJSON() throws {
        let (metrics, cases) = try schedules()
        let c = cases["plateau_abs_cooldown"]!
        var sched = plateau(c["settings"] as! [String: Any])
        var lr = double((c["settings"] as! [String: Any])["lr"])
        for m in metrics.prefix(7) { lr = sched.step(metric: Double(m), lr: lr) }
        XCTAssertGreaterThan(sched.cooldownCounter + sched.numBadEpochs, 0, "resume point should carry state")
        let json = try JSONEncoder().encode(sched)
        var resumed = try JSONDecoder().decode(ReduceLROnPlateau.self, from: json)
        XCTAssertEqual(resumed, sched)
        let keys = try XCTUnwrap(JSONSerialization.jsonObject(with: json) as? [String: Any]).keys
        XCTAssertTrue(keys.contains("num_bad_epochs") && keys.contains("cooldown_counter") && keys.contains("min_lr"))
        for m in metrics.dropFirst(7) { lr = resumed.step(metric: Double(m), lr: lr) }
        XCTAssertEqual(lr, doubles(c["lrs"]).last!)
    }

    func testStepLRMatchesPyTorch() throws {
        let (_, cases) = try schedules()
        let steps = cases.filter { $0.value["kind"] as! String == "step" }
        XCTAssertEqual(steps.count, 2)
        for (name, c) in steps {
            let settings = c["settings"] as! [String: Any]
            var sched = StepLR(stepSize: settings["step_size"] as! Int, gamma: double(settings["gamma"]))
            var lr = double(settings["lr"])
            for (i, want) in doubles(c["lrs"]).enumerated() {
                lr = sched.step(lr: lr)
                XCTAssertEqual(lr, want, "\(name) epoch \(i + 1)")
                if i == 4 {
                    sched = try JSONDecoder().decode(StepLR.self, from: JSONEncoder().encode(sched))
                }
            }
        }
    }
}
