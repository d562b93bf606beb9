import IsoKVCore

/// Aborts (`40001`, `40P01`) and lock failures (`55P03`) by cause, in ``Database/Statistics/aborts``.
public struct AbortStatistics: Sendable, Hashable, Codable {
    /// All `40001`s: the sum of the four causes below.
    public var serializationFailures = 0
    /// `40001` at a write or lock of a key a concurrent transaction changed first (`.snapshot`, `.serializable`).
    public var firstUpdaterWins = 0
    /// `40001` (SSI) at a read that completed a dangerous structure (the reader was the pivot, or its writer had
    /// committed).
    public var rwConflictOnRead = 0
    /// `40001` (SSI) at a write that completed a dangerous structure (the writer was the pivot).
    public var rwConflictOnWrite = 0
    /// `40001` (SSI) of a pivot another transaction canceled (at its commit, or while adding an edge); reported at
    /// the pivot's next read, write or commit.
    public var canceledPivots = 0
    /// `40P01`: deadlock victims.
    public var deadlocks = 0
    /// `55P03`: lock requests that failed (no-wait, lock timeout); not an abort.
    public var lockNotAvailable = 0
    public init() {}
}
