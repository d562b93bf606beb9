#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Failpoints: a small hook the tests install to make the log's system calls fail in chosen ways.
///
/// Compiled into every build (so the tests exercise the production code paths), zero cost when off: the log holds
/// an optional hook and checks it for `nil` once per system call — no lookup, no allocation, no lock.
///
/// ```swift
/// let faults = FaultHook { point in point == .fsync ? .fail(errno: EIO) : nil }
/// let (log, _) = try await WriteAheadLog.open(directory: dir, options: .init(faults: faults))
/// ```
public struct FaultHook: Sendable {
    /// Called before each fault point; returns what to do instead of the plain system call, or `nil` to proceed.
    public let decide: @Sendable (FaultPoint) -> FaultAction?

    public init(_ decide: @escaping @Sendable (FaultPoint) -> FaultAction?) { self.decide = decide }
}

/// Where a fault can be injected.
public enum FaultPoint: Hashable, Sendable {
    /// A write of a batch of WAL records (segment body).
    case walWrite
    /// The fdatasync that makes a batch durable.
    case walSync
    /// Creating the next segment file at rotation (open + header write + fsync + directory fsync).
    case segmentRotate
    /// A write to the checkpoint temp file.
    case checkpointWrite
    /// The fsync of the checkpoint temp file.
    case checkpointSync
    /// The atomic rename of the checkpoint into place.
    case checkpointRename
    /// A directory fsync (after rotation, rename or deletion).
    case directorySync
    /// Recovery cutting a torn tail: the ftruncate of the last segment, or the deletion of a torn new segment.
    case tailTruncate
}

/// What a fault point does instead of its system call.
public enum FaultAction: Hashable, Sendable {
    /// The call does nothing and fails with `errno` (EIO for a failed fsync, ENOSPC for a full disk…).
    case fail(errno: Int32)
    /// Writes only: the first `bytes` bytes reach the file, then the call fails with `errno` — a short write
    /// (ENOSPC part way) or, followed by a reopen without further I/O, a torn write as a crash leaves it.
    case partialWrite(bytes: Int, errno: Int32)
    /// The process SIGKILLs itself here, as a crash would stop it. At a write point, the first `bytes` bytes
    /// (never all of them) reach the file first: a crash mid-write, leaving a torn tail for recovery to cut.
    /// Used by the crash tests' child process to die at an exact point instead of at a random moment.
    case crashMidWrite(bytes: Int)
}

extension FaultHook {
    /// What `point` should do, for the calls that are not writes: the errno to fail with, or nil to proceed
    /// (`.partialWrite` applies to writes only). `.crashMidWrite` kills the process here.
    func failure(at point: FaultPoint) -> Int32? {
        switch decide(point) {
        case .fail(let e)?: return e
        case .crashMidWrite?: crashProcess()
        case .partialWrite?, nil: return nil
        }
    }
}

/// SIGKILL to this process (what `.crashMidWrite` does): no handler, no flush, no atexit — as a crash leaves it.
func crashProcess() -> Never {
    kill(getpid(), SIGKILL)
    while true { pause() }
}
