import IsoKVCore

/// What SSI holds in memory right now (``Database/Statistics/serializable``).
public struct SerializableStatistics: Sendable, Hashable, Codable {
    /// Tracked serializable transactions still running (safe read-only ones are not tracked).
    public var active = 0
    /// Committed serializable transactions whose SIREAD locks and edges are kept because an overlapping
    /// serializable transaction is still running.
    public var retainedCommitted = 0
    /// Point SIREAD locks held.
    public var pointLocks = 0
    /// Range SIREAD locks held.
    public var rangeLocks = 0
    /// Deferrable transactions suspended waiting for a safe snapshot.
    public var deferredWaiting = 0
    /// Read-only transactions whose snapshot was safe at once / became safe later (both never fail).
    public var safeReadOnlyAtBegin = 0
    public var safeReadOnlyLater = 0
    /// Read-only transactions (in memory) begun without registering with SSI that ended that way, after one read
    /// or none; and those registered at their second operation.
    public var readOnlyNeverRegistered = 0
    public var readOnlyRegisteredLate = 0
    /// Escalations of a transaction's SIREAD locks to the whole keyspace.
    public var escalations = 0
    /// Tracked read-only commits that found the SSI lock busy and were queued for its next holder (they never wait).
    public var queuedReadOnlyCommits = 0
    /// Durable databases: serializable commits marked committed by a later commit's publication, which made their
    /// writes visible first (two commits acknowledged by the same fsync resume in either order).
    public var preparedMarkedByLaterCommit = 0
    /// Committed transactions summarized so far because more than `maxRetainedCommitted` were retained.
    public var summarized = 0
    /// Summarized writers still remembered (24 bytes each), and summary SIREAD locks (points + ranges + the
    /// whole-keyspace one if collapsed) held now. All go once no active transaction overlaps them.
    public var summarizedWriters = 0
    public var summaryLocks = 0
}
