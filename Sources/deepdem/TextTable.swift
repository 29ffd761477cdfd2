/// The lines of a table for a terminal or a log: the first column (names) left-aligned, the
/// others (numbers) right-aligned, two spaces apart.
func alignedLines(_ rows: [[String]]) -> [String] {
    let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
    return rows.map { cells in
        cells.enumerated().map { c, cell in
            c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                   : String(repeating: " ", count: widths[c] - cell.count) + cell
        }.joined(separator: "  ")
    }
}
