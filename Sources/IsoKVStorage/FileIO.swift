#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Thin, failpoint-aware wrappers over the POSIX calls the log uses. Every failure is a typed ``StorageError``.
enum FileIO {
    /// Files are created `0600` (owner only), whatever the umask: a umask can only remove bits.
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o600) throws(StorageError) -> Int32 {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .io(operation: "open", file: path, errno: errno) }
        return fd
    }

    /// Writes all `count` bytes at the current offset, retrying short writes and EINTR.
    static func writeAll(
        _ fd: Int32, _ base: UnsafeRawPointer, _ count: Int, path: String,
        point: FaultPoint, faults: FaultHook?
    ) throws(StorageError) {
        var count = count
        var injected: Int32 = 0
        if let faults, let action = faults.decide(point) {
            switch action {
            case .fail(let e):
                throw .io(operation: "write", file: path, errno: e)
            case .partialWrite(let bytes, let e):
                count = min(count, max(0, bytes))
                injected = e
            case .crashMidWrite(let bytes):
                var done = 0
                let torn = min(count - 1, max(0, bytes))
                while done < torn {
                    let n = Glibc.write(fd, base + done, torn - done)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    done += n
                }
                crashProcess()
            }
        }
        var done = 0
        while done < count {
            let n = Glibc.write(fd, base + done, count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "write", file: path, errno: errno)
            }
            done += n
        }
        if injected != 0 { throw .io(operation: "write", file: path, errno: injected) }
    }

    static func datasync(_ fd: Int32, path: String, point: FaultPoint, faults: FaultHook?) throws(StorageError) {
        if let faults, let e = faults.failure(at: point) {
            throw .io(operation: "fdatasync", file: path, errno: e)
        }
        while fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            throw .io(operation: "fdatasync", file: path, errno: errno)
        }
    }

    /// fsyncs a directory so that entries created, renamed or removed in it survive a power loss.
    static func syncDirectory(_ path: String, faults: FaultHook?) throws(StorageError) {
        if let faults, let e = faults.failure(at: .directorySync) {
            throw .io(operation: "fsync", file: path, errno: e)
        }
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { Glibc.close(fd) }
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw .io(operation: "fsync", file: path, errno: errno)
        }
    }

    static func rename(_ from: String, _ to: String, faults: FaultHook?) throws(StorageError) {
        if let faults, let e = faults.failure(at: .checkpointRename) {
            throw .io(operation: "rename", file: to, errno: e)
        }
        guard Glibc.rename(from, to) == 0 else { throw .io(operation: "rename", file: to, errno: errno) }
    }

    static func truncate(_ fd: Int32, _ length: Int64, path: String, faults: FaultHook?) throws(StorageError) {
        if let faults, let e = faults.failure(at: .tailTruncate) {
            throw .io(operation: "ftruncate", file: path, errno: e)
        }
        guard ftruncate(fd, off_t(length)) == 0 else { throw .io(operation: "ftruncate", file: path, errno: errno) }
    }

    static func unlink(_ path: String) throws(StorageError) {
        guard Glibc.unlink(path) == 0 || errno == ENOENT else {
            throw .io(operation: "unlink", file: path, errno: errno)
        }
    }

    /// Reads a whole file into memory.
    static func readAll(_ path: String) throws(StorageError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { Glibc.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(operation: "fstat", file: path, errno: errno) }
        let size = Int(st.st_size)
        var out = [UInt8](repeating: 0, count: size)
        var done = 0
        var failure: Int32 = 0
        out.withUnsafeMutableBytes { buf in
            while done < size {
                let n = pread(fd, buf.baseAddress! + done, size - done, off_t(done))
                if n < 0 { if errno == EINTR { continue }; failure = errno; return }
                if n == 0 { break }
                done += n
            }
        }
        if failure != 0 { throw .io(operation: "read", file: path, errno: failure) }
        if done < size { out.removeSubrange(done...) }
        return out
    }

    /// Names of the entries of a directory.
    static func list(_ path: String) throws(StorageError) -> [String] {
        guard let dir = opendir(path) else { throw .io(operation: "opendir", file: path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Creates the data directory `0700` (owner only) if it is missing. An existing one that other users can write
    /// is refused (``StorageError/unsafePermissions(path:mode:)``), as PostgreSQL refuses such a data directory;
    /// one that others can only read or search (`0755`, as directories created before this rule) is tightened to
    /// `0700`, so that the log and checkpoint are private from here on.
    static func makeDirectory(_ path: String) throws(StorageError) {
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw .io(operation: "mkdir", file: path, errno: errno) }
        var st = stat()
        guard stat(path, &st) == 0 else { throw .io(operation: "stat", file: path, errno: errno) }
        let mode = UInt32(st.st_mode) & 0o7777
        if mode & 0o022 != 0 { throw .unsafePermissions(path: path, mode: mode) }
        if mode & 0o077 != 0, chmod(path, mode_t(mode & 0o700)) != 0 {
            throw .io(operation: "chmod", file: path, errno: errno)
        }
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` that keeps the typed error (the standard one is `rethrows`, which erases it).
    func withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws(StorageError) -> R) throws(StorageError) -> R {
        let result = withUnsafeBytes { buf in Result { () throws(StorageError) -> R in try body(buf) } }
        return try result.get()
    }
}
