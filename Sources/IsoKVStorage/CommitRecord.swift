/// One key written by a committed transaction: the new value (or a tombstone) and the key's new version.
///
/// Also the element of a checkpoint (the committed state is a set of `KeyWrite`s; a checkpoint may keep tombstones
/// so that per-key versions stay monotonic across a delete and re-insert).
public struct KeyWrite: Sendable, Hashable {
    /// The key bytes (1 byte … ``WALFormat/maxKeyBytes``; empty keys are allowed by the format).
    public var key: [UInt8]
    /// The new value, or `nil` for a delete (tombstone).
    public var value: [UInt8]?
    /// The key's version after this write (the engine's per-key ETag).
    public var version: UInt64

    public init(key: [UInt8], value: [UInt8]?, version: UInt64) {
        self.key = key
        self.value = value
        self.version = version
    }
}

/// Everything one committed transaction changed: the unit of the WAL (one record per commit, all or nothing).
///
/// ```swift
/// let record = CommitRecord(sequence: 42, writes: [KeyWrite(key: Array("a".utf8), value: [1], version: 7)])
/// try await log.append(record)   // returns once durable under the log's mode
/// ```
public struct CommitRecord: Sendable, Hashable {
    /// The commit sequence number the engine gave the transaction (> 0). Recovery replays only records whose
    /// sequence is above the checkpoint's.
    public var sequence: UInt64
    /// The transaction's writes, in the order the engine wants them applied (at most one per key is expected).
    public var writes: [KeyWrite]

    public init(sequence: UInt64, writes: [KeyWrite]) {
        self.sequence = sequence
        self.writes = writes
    }
}
