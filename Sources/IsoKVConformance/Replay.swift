import IsoKVCore

/// One replay of the conformance suite: a fixed interleaving of concurrent transactions, written against the store
/// contract only (``KeyValueStore``/``StoreTransaction``), that provokes one anomaly or one row-lock conflict and
/// reports what the store did as an ``Outcome``.
///
/// A replay is a value with a stable ``id`` (its raw value, used in reports and JSON), a ``name``, a one-line
/// ``summary``, the ``phenomenon`` it is about, the ``levels`` it applies to and the capabilities it
/// ``requirements`` needs. Its expected outcome follows from the backend's capabilities
/// (``expectedOutcome(at:on:)``); ``ConformanceRunner`` runs it.
///
/// ```swift
/// for replay in Replay.allCases where replay.category == .anomaly {
///     print(replay.id, replay.expectedOutcome(at: .readCommitted, on: capabilities))
/// }
/// let outcome = try await ConformanceRunner(backend: backend).run(.writeSkew, at: .serializable)
/// ```
///
/// Roles: each summary names the transactions `T1`, `T2`, … as the verdicts do (``TransactionRole``). Every
/// transaction of a replay runs at the level under test (the read-only one of the Fekete replays too).
public enum Replay: String, Hashable, Sendable, Codable, CaseIterable, Identifiable, CustomStringConvertible {
    // Anomalies, in the order of the isolation literature.
    case dirtyWrite = "dirty-write"
    case dirtyWriteRolledBack = "dirty-write-rolled-back"
    case dirtyWriteSavepoint = "dirty-write-savepoint"
    case dirtyRead = "dirty-read"
    case abortedRead = "aborted-read"
    case lostUpdate = "lost-update"
    case lostUpdateAfterWait = "lost-update-after-wait"
    case nonRepeatableRead = "non-repeatable-read"
    case readSkew = "read-skew"
    case phantom = "phantom"
    case writeSkew = "write-skew"
    case predicateWriteSkew = "predicate-write-skew"
    case readOnlyAnomaly = "read-only-anomaly"
    case readOnlyAnomalyDeferrable = "read-only-anomaly-deferrable"
    // Row locks.
    case shareLocks = "share-locks"
    case noWait = "no-wait"
    case skipLocked = "skip-locked"
    case lockTimeout = "lock-timeout"
    case deadlockOfTwo = "deadlock-of-two"
    case deadlockOfThree = "deadlock-of-three"
    case upgradeDeadlock = "upgrade-deadlock"

    /// The stable identifier: the raw value, e.g. `"lost-update-after-wait"`.
    public var id: String { rawValue }

    public var description: String { rawValue }

    /// A short title.
    public var name: String {
        switch self {
        case .dirtyWrite: return "Dirty write"
        case .dirtyWriteRolledBack: return "Dirty write, holder rolls back"
        case .dirtyWriteSavepoint: return "Dirty write, holder rolls back to a savepoint"
        case .dirtyRead: return "Dirty read"
        case .abortedRead: return "Aborted read"
        case .lostUpdate: return "Lost update (read-modify-write)"
        case .lostUpdateAfterWait: return "Lost update after a lock wait"
        case .nonRepeatableRead: return "Non-repeatable read"
        case .readSkew: return "Read skew"
        case .phantom: return "Phantom"
        case .writeSkew: return "Write skew"
        case .predicateWriteSkew: return "Predicate write skew"
        case .readOnlyAnomaly: return "Read-only anomaly"
        case .readOnlyAnomalyDeferrable: return "Read-only anomaly, deferrable reader"
        case .shareLocks: return "FOR SHARE / FOR UPDATE compatibility"
        case .noWait: return "NOWAIT"
        case .skipLocked: return "SKIP LOCKED"
        case .lockTimeout: return "Lock timeout"
        case .deadlockOfTwo: return "Deadlock of two"
        case .deadlockOfThree: return "Deadlock of three"
        case .upgradeDeadlock: return "Upgrade deadlock"
        }
    }

    /// One line: the interleaving, with the roles the verdicts name.
    public var summary: String {
        switch self {
        case .dirtyWrite:
            return "T1 writes x and stays open; T2 writes x; T1 commits."
        case .dirtyWriteRolledBack:
            return "T1 writes x and stays open; T2 writes x; T1 rolls back."
        case .dirtyWriteSavepoint:
            return
                "T1 writes y, takes a savepoint, writes x; T2 writes x; T1 rolls back to the savepoint and stays open."
        case .dirtyRead:
            return "T1 writes x = 1 and stays open; T2 reads x."
        case .abortedRead:
            return "T1 writes x = 1; T2 reads x; T1 rolls back; T2 reads x again."
        case .lostUpdate:
            return "T1 and T2 read counter n = 0; T1 writes n + 1 and commits; T2 writes n + 1."
        case .lostUpdateAfterWait:
            return "T1 reads n = 0 and writes 1; T2 reads n and writes n + 1, waiting for T1's lock; T1 commits."
        case .nonRepeatableRead:
            return "T1 reads x; T2 writes x and commits; T1 reads x again."
        case .readSkew:
            return "x = y = 50; T1 reads x; T2 moves 10 from x to y and commits; T1 reads y (sum 110 is the skew)."
        case .phantom:
            return "T1 scans the prefix emp/; T2 inserts emp/3 and commits; T1 scans again."
        case .writeSkew:
            return "Two doctors on call: T1 and T2 each read both, each takes a different one off call, both commit."
        case .predicateWriteSkew:
            return "Room booking: T1 and T2 each scan booking/101/ (empty) and insert a booking; both commit."
        case .readOnlyAnomaly:
            return
                "T2 reads checking x and savings y; T1 deposits 20 into y; read-only T3 reads x, y; T2 withdraws 10 from x with a penalty computed from the old y."
        case .readOnlyAnomalyDeferrable:
            return
                "The read-only anomaly with T3 begun serializable, read-only, deferrable: T3 waits for a safe snapshot."
        case .shareLocks:
            return "T1 and T2 lock x FOR SHARE; T3 writes x; T1 commits; a NOWAIT FOR UPDATE probe; T2 commits."
        case .noWait:
            return "T1 locks x FOR UPDATE; T2 locks x FOR UPDATE NOWAIT."
        case .skipLocked:
            return
                "Queue consumers T1–T4 each lock the first job FOR UPDATE SKIP LOCKED; T1 deletes its job and commits; T5 looks again."
        case .lockTimeout:
            return "T1 writes x; T2 writes x, waiting; the store's lock timeout expires."
        case .deadlockOfTwo:
            return "T2 writes b; T1 writes a, then b (waits for T2); T2 writes a."
        case .deadlockOfThree:
            return
                "T3 locks c; T2 locks b and writes c (waits for T3); T1 locks a and writes b (waits for T2); T3 writes a."
        case .upgradeDeadlock:
            return "T1 and T2 lock x FOR SHARE; T1 writes x (waits to upgrade); T2 writes x."
        }
    }

    public var category: ReplayCategory {
        switch self {
        case .dirtyWrite, .dirtyWriteRolledBack, .dirtyWriteSavepoint, .dirtyRead, .abortedRead, .lostUpdate,
            .lostUpdateAfterWait, .nonRepeatableRead, .readSkew, .phantom, .writeSkew, .predicateWriteSkew,
            .readOnlyAnomaly, .readOnlyAnomalyDeferrable:
            return .anomaly
        case .shareLocks, .noWait, .skipLocked, .lockTimeout, .deadlockOfTwo, .deadlockOfThree, .upgradeDeadlock:
            return .rowLock
        }
    }

    /// The phenomenon by its name in the literature (Berenson et al.'s P/A numbers, Adya's G names), or the SQL
    /// clause of the row-lock behaviour.
    public var phenomenon: String {
        switch self {
        case .dirtyWrite, .dirtyWriteRolledBack, .dirtyWriteSavepoint: return "P0 / G0 dirty write"
        case .dirtyRead: return "P1 dirty read"
        case .abortedRead: return "G1a aborted read"
        case .lostUpdate, .lostUpdateAfterWait: return "P4 lost update"
        case .nonRepeatableRead: return "P2 fuzzy (non-repeatable) read"
        case .readSkew: return "A5A read skew"
        case .phantom: return "P3 phantom"
        case .writeSkew: return "A5B / G2-item write skew"
        case .predicateWriteSkew: return "G2 predicate write skew"
        case .readOnlyAnomaly, .readOnlyAnomalyDeferrable: return "read-only transaction anomaly (Fekete et al. 2004)"
        case .shareLocks: return "FOR SHARE / FOR UPDATE"
        case .noWait: return "FOR UPDATE NOWAIT (55P03)"
        case .skipLocked: return "FOR UPDATE SKIP LOCKED"
        case .lockTimeout: return "lock_timeout (55P03)"
        case .deadlockOfTwo, .deadlockOfThree: return "deadlock (40P01)"
        case .upgradeDeadlock: return "lock upgrade deadlock (40P01)"
        }
    }

    /// The levels the replay runs at: all of them, except the deferrable replay (deferrable only means something
    /// at `.serializable`).
    public var levels: [IsolationLevel] {
        self == .readOnlyAnomalyDeferrable ? [.serializable] : IsolationLevel.allCases
    }

    /// The capabilities the replay cannot run without.
    public var requirements: [ReplayRequirement] {
        switch self {
        case .dirtyWrite, .dirtyWriteRolledBack, .lostUpdateAfterWait, .shareLocks, .deadlockOfTwo, .deadlockOfThree,
            .upgradeDeadlock:
            return [.observableLockWaits]
        case .dirtyWriteSavepoint: return [.observableLockWaits, .savepoints]
        case .lockTimeout: return [.lockTimeout]
        case .readOnlyAnomalyDeferrable: return [.deferrableReadOnly]
        case .dirtyRead, .abortedRead, .lostUpdate, .nonRepeatableRead, .readSkew, .phantom, .writeSkew,
            .predicateWriteSkew, .readOnlyAnomaly, .noWait, .skipLocked:
            return []
        }
    }
}
