import ConcurrentMaps
import IsoKVCore
/// A transaction of the embedded engine. Not `Sendable`: it belongs to the task that began it.
///
/// ```swift
/// let tx = try await db.begin(.snapshot)
/// let balance = try await tx.get("alice")?.int64 ?? 0
/// try await tx.put("alice", Bytes(balance - 10))
/// try await tx.commit()
/// ```
///
/// Life cycle: `active` → `committed` | `rolledBack`; `active` → `failed` on `40001`/`40P01` (everything is undone
/// and every lock released at once, as PostgreSQL aborts on the error; later operations throw `25P02`, `commit()`
/// throws `25P02`, `rollback()` succeeds). Other errors (`23505`, `55P03`, `54000`, `22023`, `25006`, cancellation)
/// fail only the operation: the transaction stays usable (unlike PostgreSQL, where any error aborts).
///
/// Files: reads here; `Transaction+Write.swift` (writes, row locks), `Transaction+Scan.swift`,
/// `Transaction+Savepoint.swift`, `Transaction+Commit.swift` (commit protocol, rollback, abort).
public final class Transaction: StoreTransaction {
    /// The beginning thread's owner of the database (`Database.owners`), not the handle the caller began on: it
    /// shares every part of that handle and keeps them alive until this transaction ends, even if the handle ends
    /// first.
    let db: Database
    /// This transaction's id once assigned, else 0. Assigned on first need (a write, a lock, or `id`), so that a
    /// read-only transaction never touches the shared id counter. Reads pass it as "own id": 0 matches no pending
    /// write (ids start at 1), which is right because a transaction without an id has written nothing.
    private(set) var assignedID: UInt64 = 0
    /// This transaction's id (the owner id in chains' locks and pending writes), assigned if needed.
    var txid: UInt64 {
        if assignedID == 0 {
            assignedID = db.oracleRef._withUnsafeGuaranteedRef { $0.newTransactionID() }
            // Live for the consistency checker until `state` leaves `.active` (LiveTransactions.swift).
            if case .active = state {
                let id = assignedID
                db.liveRef._withUnsafeGuaranteedRef { $0.assigned(id) }
            }
        }
        return assignedID
    }
    public var id: TransactionID { TransactionID(rawValue: txid) }
    /// The snapshot-registry stripe this transaction registers its snapshots in: from the handle's address, which
    /// spreads concurrent transactions over the stripes without touching shared memory.
    var snapshotStripe: Int {
        Int((UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()) >> 6) % UInt(Oracle.stripeCount))
    }
    /// The dense index of the thread that began the transaction (``ThreadStripe``), read once: the live counter's
    /// cell and the snapshot slot search start from it.
    let beginThread: Int
    /// The cell of `LiveTransactions.open` to count in: the beginning thread's, so that two threads rarely share
    /// one (the count is a sum, so the end may run on another thread and still use this cell).
    var liveStripe: Int { beginThread & (Oracle.stripeCount - 1) }
    public let isolation: IsolationLevel
    public let isReadOnly: Bool
    /// A `.serializable`, read-only, deferrable transaction: its first operation waits for a safe snapshot.
    let isDeferrable: Bool
    /// SSI tracking of a `.serializable` transaction, set with its snapshot (see Transaction+Serializable.swift).
    /// Only the owning task touches it (a transaction is not `Sendable`), and each SSI hook reads and updates it
    /// several times: the runtime's exclusivity checks are off for it (`@exclusivity(unchecked)`).
    @exclusivity(unchecked) var serializable: SerializableTracking?

    /// Where the transaction is in its life cycle: a plain byte, so that reading or setting it (several times in
    /// every transaction) copies nothing; the error of `.failed` is kept apart, in `failure`.
    enum State: UInt8 {
        case active
        /// Killed by `failure` (`40001`/`40P01`); already undone and unlocked.
        case failed
        case committed
        case rolledBack
    }
    /// The error that killed the transaction. Invariant: non-nil exactly when `state` is `.failed`, or `.rolledBack`
    /// after `.failed` (kept, unread).
    var failure: IsoKVError?
    /// Only the owning task touches it (a transaction is not `Sendable`): the runtime's exclusivity checks are off
    /// for it, as for `serializable`.
    @exclusivity(unchecked) var state: State = .active {
        didSet {
            // Leaving `.active` ends the transaction for the consistency checker (LiveTransactions.swift).
            if case .active = oldValue, !isActive {
                let (id, stripe) = (assignedID, liveStripe)
                db.liveRef._withUnsafeGuaranteedRef { $0.ended(txid: id, stripe: stripe) }
            }
        }
    }
    var isActive: Bool { state == .active }
    /// Set while strict mode's commit runs the real commit (see `commitThenCheck`, Database+Check.swift).
    var inStrictCommit = false

    /// The registered snapshot of a `.snapshot` transaction, taken at its first operation; nil before that and at
    /// the other levels. Unregistered when the transaction ends.
    var snapshot: UInt64?
    /// The ``SnapshotSlots`` slot `snapshot` is registered in, or -1 (a stripe of the locked registry, when every
    /// slot was taken).
    var snapshotSlot = -1
    /// Chains this transaction wrote, in first-write order (their pending writes are installed at commit).
    /// Invariant: each chain once; every chain here is also in `locks` with `.forUpdate`.
    /// This and the collections below are touched only by the owning task (a transaction is not `Sendable`), and
    /// each transaction's read and end test them: the runtime's exclusivity checks are off for them, as for
    /// `serializable`.
    @exclusivity(unchecked) var writeOrder: [KeyChain] = []
    @exclusivity(unchecked) var written: Set<ObjectIdentifier> = []
    /// Whether some pending write of this transaction was made without its version node (`PendingWrite.version`),
    /// which the commit then builds before its critical sections (`prepareVersions`).
    var unpreparedWrites = false
    /// Row locks held, by chain. Released at commit/rollback/abort, or partly at rollback to a savepoint.
    @exclusivity(unchecked) var locks = [ObjectIdentifier: (chain: KeyChain, mode: RowLockMode)]()
    /// Undo entries recorded while at least one savepoint exists (a whole-transaction rollback needs none).
    @exclusivity(unchecked) var undo: [UndoEntry] = []
    /// Live savepoints, oldest first, with the undo-log length at their creation.
    @exclusivity(unchecked) var savepoints: [(id: Int, undoMark: Int)] = []
    var nextSavepointID = 1

    enum UndoEntry {
        /// A write: the chain's pending write before it; `firstWrite` if the chain entered `writeOrder` then.
        case write(KeyChain, previous: PendingWrite?, firstWrite: Bool)
        /// A lock acquisition or upgrade: the mode held before (nil: none).
        case lock(KeyChain, previous: RowLockMode?)
    }

    /// `database` (an owner, `Database.newTransaction`) is consumed: the caller's reference is the one stored,
    /// so that a begin writes the owner's reference count once (a retain to pass, then a retain to store and a
    /// release, was three writes of that line).
    @inline(__always)
    /// `thread` is the beginning thread's ``ThreadStripe`` index, read once by the caller, which also picked the
    /// owner with it.
    init(
        database: consuming Database, thread: Int, isolation: IsolationLevel, readOnly: Bool, deferrable: Bool = false
    ) {
        self.db = database
        self.beginThread = thread
        self.isolation = isolation
        self.isReadOnly = readOnly
        self.isDeferrable = deferrable && readOnly && isolation == .serializable
        let stripe = liveStripe
        db.liveRef._withUnsafeGuaranteedRef { $0.began(stripe: stripe) }
    }

    deinit {
        if case .active = state { endTransaction(.rolledBack) }
    }

    // MARK: State checks

    func checkActive() throws {
        switch state {
        case .active: return
        case .failed:
            let e = failure ?? IsoKVError(.internalError, "the transaction failed without a recorded error")
            throw IsoKVError(
                .transactionAborted,
                "current transaction is aborted (\(e.code.rawValue): \(e.message)); roll back",
                key: e.key, otherTransaction: e.otherTransaction)
        case .committed, .rolledBack:
            throw IsoKVError(.noActiveTransaction, "transaction \(id) has already ended")
        }
    }

    func checkWritable() throws {
        try checkActive()
        if isReadOnly { throw IsoKVError(.readOnlyTransaction, "cannot write or lock in a read-only transaction") }
    }

    /// The transaction snapshot, taken and registered at the first operation of a `.snapshot` or `.serializable`
    /// transaction (the latter also registers with SSI).
    @inline(__always)
    func ensureSnapshot() -> UInt64? {
        guard isolation.hasTransactionSnapshot else { return nil }
        if let snapshot { return snapshot }
        if isolation == .serializable {
            let s = beginSerializable()
            snapshot = s
            return s
        }
        let (hint, stripe) = (slotHint, snapshotStripe)
        let (s, slot) = db.oracleRef._withUnsafeGuaranteedRef { $0.registerSnapshotFast(hint: hint, stripe: stripe) }
        snapshot = s
        snapshotSlot = slot
        return s
    }

    /// Where this transaction's slot search starts (``SnapshotSlots``): the beginning thread's dense index, so that
    /// the transactions of one thread reuse one slot (one cache line) and two threads never start at the same slot.
    var slotHint: Int { beginThread }

    /// Unregisters the transaction snapshot (at the end of the transaction); returns whether the garbage
    /// collection horizon may have moved forward.
    func releaseSnapshot(_ s: UInt64) -> Bool {
        defer { snapshotSlot = -1 }
        let (slot, stripe) = (snapshotSlot, snapshotStripe)
        return db.oracleRef._withUnsafeGuaranteedRef { $0.unregisterSnapshotFast(s, slot: slot, stripe: stripe) }
    }

    // MARK: Reads

    /// Reads `key`: own writes first; then at `.snapshot` the transaction snapshot, at `.readCommitted` the newest
    /// committed version, at `.readUncommitted` any transaction's pending write or the newest committed version.
    /// Never waits, except a deferrable transaction's first operation (for a safe snapshot).
    ///
    /// Inlinable around the synchronous `readNow(_:)`: a caller that knows it holds a `Transaction` reads with a
    /// plain call, not an async call (a frame from the task's allocator, freed after). Each branch returns on its
    /// own, so that the waiting branch's hop back to the caller's executor stays in that branch.
    @inlinable
    nonisolated(nonsending) public func get(_ key: Bytes) async throws -> Bytes? {
        if mustWaitForSafeSnapshot { return try await readAfterSafeSnapshot(key) }
        return try readNow(key)
    }

    /// Whether the next operation must first wait for a safe snapshot (a deferrable transaction that has none).
    @usableFromInline
    var mustWaitForSafeSnapshot: Bool { isDeferrable && snapshot == nil }

    /// `get(_:)` of a deferrable transaction before its safe snapshot: the checks, the wait, then the read.
    @usableFromInline
    nonisolated(nonsending) func readAfterSafeSnapshot(_ key: Bytes) async throws -> Bytes? {
        try checkActive()
        try db.limits.check(key: key)
        try await waitForSafeSnapshot()
        return try readNow(key)
    }

    /// `get(_:)` once no wait is needed (the snapshot is taken here if it is the first operation).
    @usableFromInline
    func readNow(_ key: Bytes) throws -> Bytes? {
        try checkActive()
        try db.limits.check(key: key)
        let snap = ensureSnapshot()
        if isolation == .serializable {
            return try serializableRead(key, snapshot: snap!, pointLock: true, scanned: nil)
        }
        let dirty = isolation == .readUncommitted
        // Committed data without a lock, unless this transaction has a pending write to look at (or reads dirty).
        if !dirty && written.isEmpty, let found = db.readCommitted(key, snapshot: snap) { return found.value }
        return db.read(key, txid: assignedID, snapshot: snap, dirty: dirty)
    }
}
