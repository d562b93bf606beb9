#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// File names inside a data directory and the directory lock.
///
/// ```
/// <dir>/LOCK                      flock'ed for the lifetime of an open log
/// <dir>/checkpoint.ikv            the latest checkpoint (replaced only by atomic rename)
/// <dir>/checkpoint.ikv.tmp        a checkpoint being written (deleted at open: never valid)
/// <dir>/wal-0000000000000007.log  WAL segments, numbered contiguously from 1, hex, 16 digits
/// ```
public enum DataDirectory {
    public static let lockName = "LOCK"
    public static let checkpointName = "checkpoint.ikv"
    public static let checkpointTempName = "checkpoint.ikv.tmp"

    static func segmentName(_ number: UInt64) -> String {
        let hex = String(number, radix: 16)
        return "wal-" + String(repeating: "0", count: max(0, 16 - hex.count)) + hex + ".log"
    }

    /// The segment number of a file name, or nil when the name is not a segment's.
    static func segmentNumber(_ name: String) -> UInt64? {
        guard name.hasPrefix("wal-"), name.hasSuffix(".log"), name.count == 24 else { return nil }
        return UInt64(name.dropFirst(4).dropLast(4), radix: 16)
    }

    static func join(_ dir: String, _ name: String) -> String { dir.hasSuffix("/") ? dir + name : dir + "/" + name }
}

/// An exclusive `flock` on `<dir>/LOCK`, held from open to close.
///
/// `flock` locks belong to the open file description, so a second open — from another process or from this one —
/// fails at once with ``StorageError/directoryLocked(path:)`` instead of corrupting the store. The kernel drops
/// the lock when the process dies, so a crash never leaves a stale lock.
final class DirectoryLock: Sendable {
    /// How long (1 ms steps) open waits for a held lock before throwing ``StorageError/directoryLocked(path:)``.
    static let busyRetryMilliseconds = 1000

    /// The open `LOCK` file; valid until ``release()``. Written once at init.
    private let fd: Int32

    init(directory: String) throws(StorageError) {
        let path = DataDirectory.join(directory, DataDirectory.lockName)
        let fd = try FileIO.open(path, O_RDWR | O_CREAT)
        // Retry for up to `busyRetryMilliseconds` before reporting the directory locked: a process of ours that
        // spawns a child holds a copy of every descriptor between fork and exec (O_CLOEXEC closes them only at
        // exec), so a store closed and reopened during a spawn can see its own lock for a moment.
        var attempts = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            if e == EINTR { continue }
            if e == EWOULDBLOCK && attempts < DirectoryLock.busyRetryMilliseconds {
                attempts += 1
                usleep(1000)
                continue
            }
            Glibc.close(fd)
            if e == EWOULDBLOCK { throw .directoryLocked(path: directory) }
            throw .io(operation: "flock", file: path, errno: e)
        }
        self.fd = fd
    }

    /// Unlocks by closing the descriptor. Call exactly once.
    func release() { Glibc.close(fd) }
}
