import Foundation

/// Progress on stderr (stdout carries results, e.g. JSON): a live "label 42%" line where `Console.isLive` says so,
/// otherwise GDAL-style "label: 0...10...20...30" so logs (batch jobs) get a few plain lines, not carriage returns.
final class ProgressLine {
    private let label: String
    private let live: Bool
    private var shown = -1

    init(_ label: String) {
        self.label = label
        live = Console.isLive(STDERR_FILENO)
    }

    func update(_ fraction: Double) {
        let percent = Int((min(1, max(0, fraction)) * 100).rounded(.down))
        if live {
            guard percent != shown else { return }
            shown = percent
            write("\r\(label) \(percent)%")
        } else {
            // GDAL's ticks: a number every 10 %, a dot every 2.5 % in between.
            let tick = Int((min(1, max(0, fraction)) * 40).rounded(.down))
            guard tick > shown else { return }
            var text = shown < 0 ? "\(label): " : ""
            for t in max(0, shown + 1)...tick { text += t % 4 == 0 ? "\(t / 4 * 10)" : "." }
            shown = tick
            write(text)
        }
    }

    /// Runs `body` with this line as its progress callback; the line is closed either way, so an
    /// error message that follows starts on a line of its own.
    func run<T>(_ body: (@escaping (Double) -> Void) throws -> T) rethrows -> T {
        do {
            let result = try body { [self] in update($0) }
            update(1)
            write(live ? "\n" : " - done.\n")
            return result
        } catch {
            if shown >= 0 { write("\n") }
            throw error
        }
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
