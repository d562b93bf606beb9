#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Every error the durability layer throws, grouped by when it happens.
///
/// Opening: ``directoryLocked(path:)``, ``unsafePermissions(path:mode:)``, ``unsupportedFormat(file:version:)``, ``corruptSegment(file:offset:reason:)``,
/// ``corruptCheckpoint(file:offset:reason:)``, ``missingSegment(file:)``.
/// Committing: ``logFailed(cause:)`` (the log hit an I/O error earlier and refuses every later commit),
/// ``closed``, ``recordTooLarge(bytes:limit:)``, ``keyTooLarge(bytes:limit:)``.
/// Any time: ``io(operation:file:errno:)`` for a system call that failed.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Returned by open when another open log (this process or another) holds the directory's `LOCK` file.
    case directoryLocked(path: String)
    /// Returned by open when the data directory can be written by users other than its owner (group or other write
    /// bit): anyone could then replace the log. `mode` is the directory's permission bits.
    case unsafePermissions(path: String, mode: UInt32)
    /// Returned by open when a segment or checkpoint was written by a format version this build cannot read.
    case unsupportedFormat(file: String, version: UInt32)
    /// Returned by open and `check` when a WAL segment is damaged anywhere but its torn tail: a bad record followed
    /// by a valid one, a bad header, or damage in a segment that is not the last. `offset` is the first bad byte.
    case corruptSegment(file: String, offset: Int64, reason: String)
    /// Returned by open and `check` when the checkpoint file is damaged (it is written aside, fsynced and renamed
    /// into place, so no crash can tear it: any damage is corruption).
    case corruptCheckpoint(file: String, offset: Int64, reason: String)
    /// Returned by open when segment numbers have a hole (a segment file was removed by hand).
    case missingSegment(file: String)
    /// Returned by every append after a write or fsync failed once: the kernel may have dropped the dirty pages, so
    /// the log cannot know what is on disk ("fsyncgate"). Reopen the directory to recover from what is durable.
    case logFailed(cause: String)
    /// Returned by appends after ``WriteAheadLog/close()``.
    case closed
    /// Returned by ``WriteAheadLog/checkpoint(sequence:entries:)`` when another checkpoint is being written.
    case checkpointInProgress
    /// Returned by append when an encoded record exceeds ``WALFormat/maxPayloadBytes``.
    case recordTooLarge(bytes: Int, limit: Int)
    /// Returned by append and checkpoint when a key exceeds ``WALFormat/maxKeyBytes``.
    case keyTooLarge(bytes: Int, limit: Int)
    /// A system call failed; `errno` is the raw error number.
    case io(operation: String, file: String, errno: Int32)

    public var description: String {
        switch self {
        case .directoryLocked(let path):
            return "data directory \(path) is locked by another open store (flock on \(path)/LOCK)"
        case .unsafePermissions(let path, let mode):
            return "data directory \(path) is writable by other users (mode \(String(mode, radix: 8))); "
                + "allow its owner only (chmod 700 \(path))"
        case .unsupportedFormat(let file, let version):
            return "\(file): unsupported format version \(version) (this build reads version \(WALFormat.version))"
        case .corruptSegment(let file, let offset, let reason):
            return "\(file) at offset \(offset): corrupt WAL segment: \(reason)"
        case .corruptCheckpoint(let file, let offset, let reason):
            return "\(file) at offset \(offset): corrupt checkpoint: \(reason)"
        case .missingSegment(let file):
            return "missing WAL segment \(file) (segment numbers must be contiguous)"
        case .logFailed(let cause):
            return "write-ahead log is in the failed state and accepts no more commits (reopen to recover): \(cause)"
        case .closed:
            return "write-ahead log is closed"
        case .checkpointInProgress:
            return "a checkpoint is already being written"
        case .recordTooLarge(let bytes, let limit):
            return "commit record of \(bytes) bytes exceeds the limit of \(limit) bytes"
        case .keyTooLarge(let bytes, let limit):
            return "key of \(bytes) bytes exceeds the limit of \(limit) bytes"
        case .io(let operation, let file, let err):
            return "\(operation)(\(file)) failed: \(String(cString: strerror(err))) (errno \(err))"
        }
    }
}

/// Why a byte string is not a valid record payload (the decoder's error; the WAL wraps it with file and offset).
public struct RecordDecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, e.g. "key length 9000 exceeds the 12 bytes left".
    public var reason: String
    /// Offset inside the payload where decoding stopped.
    public var offset: Int

    public var description: String { "malformed record at payload offset \(offset): \(reason)" }
}
