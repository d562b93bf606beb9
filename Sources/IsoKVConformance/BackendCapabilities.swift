/// What a backend declares about itself; the expected outcome of every replay follows from it
/// (``Replay/expectedOutcome(at:on:)``). Every field is required: a backend states each fact rather than inheriting
/// a default it never thought about.
///
/// ```swift
/// let embedded = BackendCapabilities(
///     readUncommitted: .dirtyReads, serializable: .serializableSnapshotIsolation,
///     deadlockVictim: .requesterClosingCycle, observableLockWaits: true, savepoints: true,
///     lockTimeout: true, deferrableReadOnly: true, failedStatementAbortsTransaction: false)
/// var postgres = embedded
/// postgres.readUncommitted = .readCommitted              // PostgreSQL runs READ UNCOMMITTED as READ COMMITTED
/// postgres.deadlockVictim = .firstWaiterToTimeOut        // deadlock_timeout
/// postgres.failedStatementAbortsTransaction = true       // any error aborts a PostgreSQL transaction
/// ```
///
/// The cells of the expected table that depend on a capability are listed in DESIGN.md ("Capabilities").
public struct BackendCapabilities: Hashable, Sendable, Codable {
    /// What `.readUncommitted` does.
    public enum ReadUncommitted: String, Hashable, Sendable, Codable {
        /// Reads see other transactions' uncommitted writes (the embedded engine).
        case dirtyReads = "dirty-reads"
        /// Read uncommitted runs as read committed (PostgreSQL, which the SQL standard allows).
        case readCommitted = "read-committed"
    }

    /// What `.serializable` is.
    public enum Serializable: String, Hashable, Sendable, Codable {
        /// Serializable snapshot isolation (Cahill et al., PostgreSQL's SERIALIZABLE): snapshot reads that never
        /// wait, plus a `40001` for one transaction of each dangerous structure of read/write dependencies.
        case serializableSnapshotIsolation = "ssi"
        /// Snapshot isolation under the name serializable (as Oracle's SERIALIZABLE, or PostgreSQL before 9.1):
        /// write skew and the read-only anomaly occur.
        case snapshotIsolation = "snapshot-isolation"
    }

    /// Which transaction of a lock-wait cycle fails with `40P01`.
    public enum DeadlockVictim: String, Hashable, Sendable, Codable {
        /// The cycle is looked for whenever a transaction starts to wait, and the requester that closes it is the
        /// victim, at once (the embedded engine).
        case requesterClosingCycle = "requester-closing-cycle"
        /// Each waiter looks for a cycle after a delay (PostgreSQL's `deadlock_timeout`) and aborts itself if it
        /// finds one, so the transaction that has waited longest is the victim.
        case firstWaiterToTimeOut = "first-waiter-to-time-out"
    }

    public var readUncommitted: ReadUncommitted
    public var serializable: Serializable
    public var deadlockVictim: DeadlockVictim
    /// The backend can report when a transaction is suspended on a row lock
    /// (``ConformanceBackend/waitUntilWaiting(_:on:in:)``). Replays that must order a step after a wait need it;
    /// without it they are not run (a replay never sleeps and hopes the other transaction is waiting by then).
    public var observableLockWaits: Bool
    /// ``StoreTransaction/savepoint()`` and ``StoreTransaction/rollback(to:)`` work, and rolling back to a
    /// savepoint releases the row locks taken after it.
    public var savepoints: Bool
    /// The store honours ``StoreOptions/lockTimeout``: a blocking lock request fails with `55P03` once it has waited
    /// that long.
    public var lockTimeout: Bool
    /// Serializable read-only deferrable transactions (``ConformanceBackend/beginDeferrable(in:)``) that wait for a
    /// safe snapshot, and the hook that observes the wait (``ConformanceBackend/waitUntilDeferred(_:in:)``).
    public var deferrableReadOnly: Bool
    /// A failed statement (`55P03`, `23505`, …) aborts the whole transaction, as in PostgreSQL; false when it fails
    /// only the operation, as in the embedded engine. Changes no verdict: it decides what the lock replays check
    /// about the transaction after its `55P03`.
    public var failedStatementAbortsTransaction: Bool

    public init(
        readUncommitted: ReadUncommitted, serializable: Serializable, deadlockVictim: DeadlockVictim,
        observableLockWaits: Bool, savepoints: Bool, lockTimeout: Bool, deferrableReadOnly: Bool,
        failedStatementAbortsTransaction: Bool
    ) {
        self.readUncommitted = readUncommitted
        self.serializable = serializable
        self.deadlockVictim = deadlockVictim
        self.observableLockWaits = observableLockWaits
        self.savepoints = savepoints
        self.lockTimeout = lockTimeout
        self.deferrableReadOnly = deferrableReadOnly
        self.failedStatementAbortsTransaction = failedStatementAbortsTransaction
    }

    /// Whether the backend has what `requirement` asks for.
    public func satisfies(_ requirement: ReplayRequirement) -> Bool {
        switch requirement {
        case .observableLockWaits: return observableLockWaits
        case .savepoints: return savepoints
        case .lockTimeout: return lockTimeout
        case .deferrableReadOnly: return deferrableReadOnly
        }
    }
}
