import Data

/// `--window x,y,width,height` (figure, evaluate): a pixel window of the scene's grid, which the
/// library checks against the grid it reads.
func parseWindow(_ text: String) throws -> PixelWindow {
    let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard parts.count == 4, let x = parts[0], let y = parts[1], let w = parts[2], let h = parts[3] else {
        throw CLIError("--window must be x,y,width,height in pixels (got \(text))")
    }
    return PixelWindow(x: x, y: y, width: w, height: h)
}
