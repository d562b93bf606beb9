/// When ``WriteAheadLog/append(_:)`` returns, i.e. what an acknowledged commit survives.
///
/// | mode            | acknowledged after                  | survives process crash | survives power loss |
/// |-----------------|-------------------------------------|------------------------|---------------------|
/// | `.fsync`        | write(2) + fdatasync of its batch   | yes                    | yes                 |
/// | `.buffered`     | write(2) of its batch (page cache)  | yes                    | no (last writes)    |
/// | `.unsafeNoSync` | queued in process memory            | no (last writes)       | no                  |
///
/// In every mode recovery yields a *prefix* of the commit history, so no transaction is ever half visible;
/// the modes only differ in how long that prefix is guaranteed to be.
public enum DurabilityMode: String, Sendable, CaseIterable, Codable {
    /// The default: a commit returns once its record is on stable storage. Concurrent commits share one write and
    /// one fdatasync (group commit).
    case fsync
    /// A commit returns once the flusher has handed its record to the kernel. A killed process loses nothing; a
    /// power loss or kernel crash may lose the commits since the last segment rotation, checkpoint or close
    /// (which still fsync).
    case buffered
    /// UNSAFE: a commit returns as soon as its record is queued in memory; the flusher writes it later and never
    /// fsyncs anything (not even at rotation or checkpoint). A crash of the process loses the last commits. For
    /// benchmarks and bulk loads you can redo. Appends wait only when the queue exceeds
    /// ``WALOptions/maxQueuedBytes``.
    case unsafeNoSync
}

/// Options of a ``WriteAheadLog``.
public struct WALOptions: Sendable {
    /// What an acknowledged append survives (default `.fsync`).
    public var durability: DurabilityMode
    /// A segment is closed and the next one created once it holds at least this many bytes (default 64 MiB;
    /// minimum 4 KiB). Only whole segments are deleted after a checkpoint.
    public var segmentBytes: Int
    /// In `.unsafeNoSync`, appends wait for the flusher when this many bytes are queued (default 16 MiB).
    public var maxQueuedBytes: Int
    /// Failpoints for tests; `nil` (the default) costs one branch per system call.
    public var faults: FaultHook?

    public init(
        durability: DurabilityMode = .fsync, segmentBytes: Int = 64 << 20, maxQueuedBytes: Int = 16 << 20,
        faults: FaultHook? = nil
    ) {
        self.durability = durability
        self.segmentBytes = max(4096, segmentBytes)
        self.maxQueuedBytes = max(4096, maxQueuedBytes)
        self.faults = faults
    }
}

/// Counters of a log since it was opened.
public struct WALStatistics: Sendable, Hashable, Codable {
    /// Records appended (acknowledged or not).
    public var appends: UInt64 = 0
    /// write(2) calls of batches by the flusher.
    public var batches: UInt64 = 0
    /// fdatasync calls on segments (batches in `.fsync` mode, plus rotations and close).
    public var syncs: UInt64 = 0
    /// Bytes written to segments (records only, not headers).
    public var bytesWritten: UInt64 = 0
    /// Time spent in the fdatasync of batches (`.fsync` mode), to compare with the disk's raw latency.
    public var batchSyncNanoseconds: UInt64 = 0
    /// Segments created since open (the first one included).
    public var segmentsCreated: UInt64 = 0
    /// Segments deleted by checkpoints.
    public var segmentsDeleted: UInt64 = 0
    /// Checkpoints completed.
    public var checkpoints: UInt64 = 0
}

/// Where an enqueued record will be in the log: what ``WriteAheadLog/waitDurable(_:)`` waits for.
public struct DurabilityTicket: Sendable, Hashable {
    /// Log position just after the record (bytes enqueued since open).
    let end: UInt64
    /// The queue held more than ``WALOptions/maxQueuedBytes`` after this record: `.unsafeNoSync` waits for it.
    let overQueueLimit: Bool
}
