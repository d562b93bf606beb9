import IsoKVCore
import Synchronization

/// Whether a read-only transaction's snapshot can take part in an anomaly (Ports & Grittner §4.2).
enum SnapshotSafety: Sendable {
    /// Some read-write transaction that was active at its snapshot is still running. (Also what
    /// `SSIManager.waitForSafety` returns when its task was cancelled before the snapshot's safety was known.)
    case pending
    /// No anomaly can involve it: every concurrent read-write transaction ended without an rw-conflict out to a
    /// transaction that committed before the snapshot.
    case safe
    /// A concurrent read-write transaction committed with an rw-conflict out to a transaction that committed
    /// before the snapshot: the snapshot may see a state no serial order shows. It stays tracked (and a
    /// deferrable transaction takes a new snapshot).
    case unsafe
}

/// The SSI record of one serializable transaction (PostgreSQL's `SERIALIZABLEXACT`): one object, shared by the
/// owning ``Transaction`` (through `SerializableTracking.xact`), the begin queue and `SSIState.xacts`.
///
/// Two kinds of fields, with two rules:
/// - `txid`, `readOnly` (constants) and the atomics `doomed` and `safe` are read by the owner without the SSI lock;
///   the atomics only go from false to true, each stored under the SSI lock.
/// - Every `var` below them is guarded by the SSI lock: only read or written with it held. Before its
///   registration (`SSIState.registerBeginLocked`) only the begin that made the record touches it.
///
/// Hence `@unchecked Sendable`: the owner's task and the SSI lock's holders share it, and the compiler cannot see
/// that the lock guards the vars. One object rather than a handle plus a record: one
/// allocation and one free per serializable transaction fewer, and no second reference to keep alive.
///
/// A class, not a struct: records are updated in place many times per transaction, and with a struct each such
/// update moved the whole record out of the table and back, inside the SSI lock.
final class SerializableXact: @unchecked Sendable {
    /// A record made at the begin, outside every lock; `beginSeq` is assigned when it is registered.
    init(txid: UInt64, readOnly: Bool) {
        self.txid = txid
        self.readOnly = readOnly
    }

    /// The record a lazy read-only transaction holds until it is registered (SSI/DESIGN.md, "Read-only transactions
    /// registered late"): never registered, never doomed nor marked safe; shared by all of them (the owner only
    /// reads its two atomics).
    static let lazyPlaceholder = SerializableXact(txid: 0, readOnly: true)

    let txid: UInt64
    /// Declared read-only (`begin(.serializable, readOnly: true)`).
    let readOnly: Bool
    /// True once another transaction chose this one as the victim of a dangerous structure (PostgreSQL's
    /// `SXACT_FLAG_DOOMED`); the owner then fails with `40001` at its next read, write or commit. The reason is in
    /// `doom`. Stored under the SSI lock, together with `doom`.
    let doomed = Atomic<Bool>(false)
    /// True once this read-only transaction's snapshot is known safe: it is no longer tracked (no SIREAD locks, no
    /// conflict checks) and can never fail with `40001` (PostgreSQL's `SXACT_FLAG_RO_SAFE`). Stored under the SSI
    /// lock.
    let safe = Atomic<Bool>(false)

    /// Durable databases: the commit timestamp (the oracle's `ts`) of this prepared transaction, stored inside the
    /// commit lock's critical section that assigns it (release); 0 before that, and always in memory. Loaded under
    /// the SSI lock (acquire) by whichever publication covers it: every publication of a `ts` marks the prepared
    /// transactions at or below it committed, in timestamp order (`SSIManager.commitPreparedLocked`). A prepared
    /// record whose value is still 0 there has a `ts` above the publication's (its commit-lock section comes later).
    let preparedTS = Atomic<UInt64>(0)

    /// Whether the owner must keep tracking reads (read without the SSI lock).
    @inline(__always) var isTracked: Bool { !safe.load(ordering: .acquiring) }

    // Guarded by the SSI lock from here on. The runtime's exclusivity checks are off for these fields
    // (`@exclusivity(unchecked)`): every access happens inside the SSI lock, which already rules out overlapping
    // ones from two threads, and the checks (a thread-local access set per read or write of a field) were a
    // measurable part of the SSI critical section (`swift_beginAccess`, `AccessSet::insert` in its profile).

    /// SSI clock value of the begin, assigned at registration (`SSIState.registerBeginLocked`, in snapshot order;
    /// never changed afterwards). Registration is ordered against every commit's publication exactly as the
    /// snapshot is (the begin queue, `SSIManager.begin`), so a transaction `T` committed before this snapshot ⇔
    /// `T.commitSeq < beginSeq`.
    @exclusivity(unchecked) var beginSeq: UInt64 = 0
    /// SSI clock value at commit (assigned under the SSI lock, in the same critical section as the publication of
    /// its writes); nil while active. Invariant: `commitSeq == nil || commitSeq > beginSeq`.
    @exclusivity(unchecked) var commitSeq: UInt64?
    /// The commit timestamp of its writes (the oracle's `ts`), set with `commitSeq` for a read-write commit; 0
    /// otherwise. Places a read-only transaction registered late (`SSIState.registerLateLocked`).
    @exclusivity(unchecked) var commitTS: UInt64 = 0
    /// Why this transaction was doomed (set together with `doomed`).
    @exclusivity(unchecked) var doom: IsoKVError?
    /// rw-antidependencies in: reader txid → what it read that this transaction wrote.
    /// Invariant: `xacts[r].outConflicts[self] != nil` ⇔ `inConflicts[r] != nil` (edges kept on both ends).
    @exclusivity(unchecked) var inConflicts = TxidMap<ConflictEdge>()
    /// rw-antidependencies out: writer txid → what this transaction read that the writer wrote.
    @exclusivity(unchecked) var outConflicts = TxidMap<ConflictEdge>()
    /// The earliest `commitSeq` among out-conflict partners already cleaned up (PostgreSQL's summary conflict out
    /// plus `earliestOutConflictCommit`), so that removing a committed partner loses no dangerous structure.
    @exclusivity(unchecked) var summaryOutCommit: UInt64?
    /// What the partner cleaned up behind `summaryOutCommit` was (for diagnostics).
    @exclusivity(unchecked) var summaryOutWhat: String?
    /// The newest `commitSeq` among summarized transactions with an rw-conflict *into* this one (PostgreSQL's
    /// summary conflict-in): each is treated as a committed read-write `T_in` that committed then (a later commit
    /// is the conservative side of every check that uses it).
    @exclusivity(unchecked) var summaryInCommit: UInt64?
    /// Point SIREAD keys, handed over at commit so that the cleanup can remove them from `PointLockTable`.
    @exclusivity(unchecked) var pointKeys: [Bytes] = []
    /// Read-only: the read-write transactions active at its snapshot and not yet ended (possible unsafe
    /// conflicts). Read-write: the read-only transactions whose set contains it.
    @exclusivity(unchecked) var possibleUnsafe = TxidSet()
    /// Read-only transactions only.
    @exclusivity(unchecked) var safety: SnapshotSafety = .pending

    /// Passed the pre-commit check and is committing on a durable database (its record is in the WAL, awaiting
    /// fsync), but not yet marked committed: it can no longer be the victim. A dangerous structure that would
    /// choose it aborts another participant instead (PostgreSQL's prepared-transaction rule).
    /// Invariant: `prepared` ⇔ the record is in `SSIState.prepared` (then its `pointKeys` are already set).
    @exclusivity(unchecked) var prepared = false
    var isCommitted: Bool { commitSeq != nil }
    /// Whether freeing this record frees more than the object: edges, point keys, partners, a diagnostic text.
    var ownsStorage: Bool {
        !inConflicts.isEmpty || !outConflicts.isEmpty || !pointKeys.isEmpty || !possibleUnsafe.isEmpty
            || summaryOutWhat != nil || doom != nil
    }
    var isDoomed: Bool { doom != nil }
}

/// What an rw-antidependency is about: the key written, and how the reader covered it (the key itself, or a
/// scanned range containing it). The text is built only when an error or a diagnostic needs it, never under the
/// SSI lock on the common path.
struct ConflictEdge: Sendable, CustomStringConvertible {
    let key: Bytes
    /// The scanned range that covered `key`, or nil for a point read of `key`.
    let scanned: PredicateRange?
    init(key: Bytes, scanned: PredicateRange? = nil) {
        self.key = key
        self.scanned = scanned
    }
    var description: String { scanned.map { "key \(key) in scanned \($0)" } ?? "key \(key)" }
}
