import Foundation
import Primitives

/// The training and validation loss curves as an SVG picture (log-scaled loss), redrawn from
/// metrics.jsonl at each checkpoint so it covers a resumed run's whole history.
public enum LossCurve {
    public static func write(metricsFile: String, to path: String) throws {
        var train: [(Double, Double)] = [], val: [(Double, Double)] = []
        if let text = try? String(contentsOfFile: metricsFile, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let step = o["step"] as? Int else { continue }
                if let l = o["train_loss"] as? Double, l > 0 { train.append((Double(step), l)) }
                if let l = o["val_loss"] as? Double, l > 0 { val.append((Double(step), l)) }
            }
        }
        guard !(train.isEmpty && val.isEmpty) else { return }
        let all = train + val
        let x0 = 0.0, x1 = max(all.map(\.0).max()!, 1)
        var y0 = log10(all.map(\.1).min()!), y1 = log10(all.map(\.1).max()!)
        if y1 - y0 < 0.1 { y0 -= 0.05; y1 += 0.05 }
        let w = 720.0, h = 400.0, left = 70.0, right = 20.0, top = 30.0, bottom = 45.0
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (w - left - right) }
        func py(_ y: Double) -> Double { top + (y1 - log10(y)) / (y1 - y0) * (h - top - bottom) }
        func polyline(_ pts: [(Double, Double)], _ color: String) -> String {
            let p = pts.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
            return "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(p)\"/>\n"
        }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(left)\" y=\"18\">masked L1 loss (m), log scale — training (blue), validation (orange)</text>\n"
        for k in 0...4 {
            let y = y0 + (y1 - y0) * Double(k) / 4
            let v = pow(10, y)
            svg += String(format: "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", left, w - right, py(v), py(v))
            svg += String(format: "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", left - 6, py(v) + 4, v)
        }
        for k in 0...4 {
            let x = x0 + (x1 - x0) * Double(k) / 4
            svg += String(format: "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n", px(x), h - bottom + 18, x)
        }
        svg += "<text x=\"\((w + left) / 2)\" y=\"\(h - 8)\" text-anchor=\"middle\">optimizer step</text>\n"
        if !train.isEmpty { svg += polyline(train, "#1f77b4") }
        if !val.isEmpty { svg += polyline(val, "#ff7f0e") }
        svg += "</svg>\n"
        try StagedOutput.write(Data(svg.utf8), to: path)
    }
}
