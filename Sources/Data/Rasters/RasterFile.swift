import Foundation

// Apart from GDAL.swift: CGDAL's headers declare the S_IF* constants a second time.
extension GDAL {
    /// Refuses what GDAL should not be asked to open as a raster file: a missing path, a folder,
    /// or a FIFO, device or socket (opening a FIFO waits for a writer; a device's reads may never end).
    static func checkRasterFile(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw DataError(path, errno == ENOENT ? "no such file" : "cannot read: \(String(cString: strerror(errno)))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            let kinds = [S_IFIFO: "a FIFO", S_IFDIR: "a folder", S_IFCHR: "a device", S_IFBLK: "a device", S_IFSOCK: "a socket"]
            throw DataError(path, (kinds[st.st_mode & S_IFMT].map { "is \($0)" } ?? "is not a regular file") + ", not a raster file")
        }
    }
}
