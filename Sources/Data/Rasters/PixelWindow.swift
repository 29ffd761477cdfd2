/// A pixel window of a raster: column, row, width and height.
public struct PixelWindow: Codable, Equatable, Sendable {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    /// The window, or an error naming `path` when it does not lie inside `grid`.
    func checked(in grid: Grid, path: String) throws -> PixelWindow {
        guard width > 0, height > 0, x >= 0, y >= 0, x + width <= grid.width, y + height <= grid.height else {
            throw DataError(path, "window \(width)×\(height) at (\(x), \(y)) is not inside the \(grid.width)×\(grid.height) px raster")
        }
        return self
    }
}
