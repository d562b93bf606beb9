import IsoKVCore
import Foundation
/// Per-transaction SSI tracking of a `.serializable` transaction, owned by the transaction (no lock needed).
struct SerializableTracking {
    /// The transaction's SSI record, shared with the SSI state; the owner reads only its `doomed` and `safe` flags.
    /// Replaced once, by the registration of a lazy read-only transaction.
    var xact: SerializableXact
    /// Keys this transaction holds a point SIREAD lock on (empty after escalation).
    var reads: Set<Bytes> = []
    /// Holds a whole-keyspace SIREAD lock (escalated): point reads add no more locks.
    var escalated = false
    /// SSI operations so far (point reads, locks, scans, writes): a point read that is the first one is deferred.
    var operations = 0
    /// The key of the transaction's first operation, a point read made at the snapshot without an SIREAD lock and
    /// without noting newer writers. Invariant: non-nil only while that read is untracked; it is tracked — exactly as
    /// if it had been made then — by the next SSI operation or the commit (`trackDeferredRead`), unless the
    /// transaction commits with that one read and nothing else, or its own pending write on the key stands (both
    /// need no SIREAD lock: SSI/DESIGN.md, "The first point read, deferred").
    var deferredRead: Bytes?
    /// The chain of `deferredRead`'s key once this transaction wrote it (the write covers the read while it stands).
    var deferredReadWrittenAt: KeyChain?

    var pointKeys: [Bytes] { Array(reads) }
    /// Read-only and not registered with SSI yet (SSI/DESIGN.md, "Read-only transactions registered late"): the
    /// lazy slot holding a bound of its snapshot, until the registration (at its second operation) or its end.
    /// `xact` is then ``SerializableXact/lazyPlaceholder``.
    var lazySlot: Int?
}

/// The SSI hooks of a transaction: each is called only at `.serializable` and does nothing more than a snapshot
/// read once the transaction is untracked (a read-only transaction with a safe snapshot). See SSI/DESIGN.md.
extension Transaction {
    /// Registers with SSI and takes the snapshot (one critical section); returns the snapshot.
    func beginSerializable() -> UInt64 {
        let (hint, stripe) = (slotHint, snapshotStripe)
        // A read-only transaction with no read-write serializable transaction around is safe at once: no SSI lock,
        // no transaction id, no tracking (`serializable` stays nil, so every hook sees it as untracked).
        if isReadOnly {
            let begun: (snapshot: UInt64, slot: Int)? = withSSIAndOracle { ssi, oracle in
                guard let begun = ssi.tryBeginSafeReadOnly(oracle: oracle, hint: hint, stripe: stripe) else {
                    return nil
                }
                ssi.counters.safeAtBegin.add(1, stripe: stripe)
                return begun
            }
            if let begun {
                snapshotSlot = begun.slot
                return begun.snapshot
            }
        }
        // Read-only: begun without SSI, registered only if a second operation comes (one read needs no tracking
        // at all). Durable databases too: their commits are marked in timestamp order, in the publication that
        // makes them visible (SSIManager.commitPreparedLocked), as in memory.
        if isReadOnly && !isDeferrable,
            let lazy = withSSI({ $0.beginLazyReadOnly(hint: hint, stripe: stripe) })
        {
            snapshotSlot = lazy.slot
            serializable = SerializableTracking(xact: .lazyPlaceholder, lazySlot: lazy.lazySlot)
            return lazy.snapshot
        }
        let (id, readOnly) = (txid, isReadOnly)
        let (snap, slot, xact) = withSSIAndOracle { ssi, oracle in
            ssi.begin(txid: id, readOnly: readOnly, oracle: oracle, hint: hint, stripe: stripe)
        }
        snapshotSlot = slot
        serializable = SerializableTracking(xact: xact)
        return snap
    }

    /// `db.ssi` for the per-transaction paths, without a retain (see `Database.ssiRef`).
    @inline(__always)
    func withSSI<R>(_ body: (SSIManager) throws -> R) rethrows -> R {
        try db.ssiRef._withUnsafeGuaranteedRef(body)
    }

    /// `db.ssi` and `db.oracle`, neither retained.
    @inline(__always)
    private func withSSIAndOracle<R>(_ body: (SSIManager, Oracle) -> R) -> R {
        db.ssiRef._withUnsafeGuaranteedRef { ssi in db.oracleRef._withUnsafeGuaranteedRef { body(ssi, $0) } }
    }

    /// The tracked SSI record, or nil if untracked (no snapshot yet, or a safe read-only snapshot).
    @inline(__always)
    var trackedHandle: SerializableXact? {
        guard let h = serializable?.xact, h.isTracked else { return nil }
        return h
    }

    /// Throws (and aborts) if another transaction chose this one as the victim of a dangerous structure.
    @inline(__always)
    func checkNotDoomed(_ h: SerializableXact) throws {
        if h.doomed.load(ordering: .acquiring) { throw abort(db.ssi.doomError(h)) }
    }

    /// The SSI record to track an operation with, registering this transaction first if it was begun lazily
    /// (read-only, not registered yet: ``SerializableTracking/lazySlot``). Called by every operation after the
    /// first, which is a deferred point read and needs no record. Returns nil when the registration found the
    /// snapshot safe: the transaction is then untracked, and its deferred read needs no tracking either.
    func registeredHandle(_ h: SerializableXact) -> SerializableXact? {
        guard let lazySlot = serializable!.lazySlot else { return h }
        let rec = SerializableXact(txid: txid, readOnly: true)
        let snap = snapshot!
        withSSI { ssi in
            ssi.registerLate(rec, snapshot: snap)
            ssi.endLazyReadOnly(lazySlot: lazySlot, registered: true, stripe: liveStripe)
        }
        serializable!.xact = rec
        serializable!.lazySlot = nil
        guard rec.isTracked else {
            serializable!.deferredRead = nil
            return nil
        }
        return rec
    }

    /// A serializable read of `key`: SIREAD lock first (a point lock, unless a scan's range lock covers it), then
    /// the snapshot read, noting versions written by others after the snapshot or still pending — each an
    /// rw-antidependency from this transaction to their writer.
    func serializableRead(
        _ key: Bytes, snapshot: UInt64, pointLock: Bool, scanned: KeyRange?,
        chain: KeyChain? = nil
    ) throws -> Bytes? {
        guard let h = trackedHandle else {
            // Untracked (a read-only transaction found safe): a snapshot read, lock-free unless this transaction
            // has a pending write to look at, as at `.snapshot`.
            guard written.isEmpty else {
                return db.read(key, txid: assignedID, snapshot: snapshot, dirty: false, chain: chain)
            }
            return db.readAtSnapshot(key, snapshot, txid: assignedID, chain: chain)
        }
        try checkNotDoomed(h)
        serializable!.operations += 1
        if pointLock && serializable!.operations == 1 {
            // The first operation: a snapshot read (no own write yet), tracked later if the transaction goes on.
            serializable!.deferredRead = key
            return db.readAtSnapshot(key, snapshot, txid: assignedID)
        }
        guard let h = registeredHandle(h) else {  // found safe at its registration
            return db.readAtSnapshot(key, snapshot, txid: assignedID, chain: chain)
        }
        try trackDeferredRead(h)
        if pointLock { trackPoint(key, h) }
        let (value, writers) = db.readNotingWriters(key, txid: txid, snapshot: snapshot, chain: chain)
        if !writers.isEmpty {
            let edge = ConflictEdge(key: key, scanned: scanned.map(PredicateRange.init))
            if let e = db.ssi.readFoundNewer(h, writers: writers, edge: edge) {
                throw abort(e)
            }
        }
        return value
    }

    /// `lock(key)` reads the key: it takes an SIREAD lock (first updater wins already covers newer versions).
    func serializableLockRead(_ key: Bytes) throws {
        guard let h = trackedHandle else { return }
        try checkNotDoomed(h)
        serializable!.operations += 1
        assert(serializable!.lazySlot == nil, "a lazy transaction is read-only: it never locks")
        try trackDeferredRead(h)
        trackPoint(key, h)
    }

    /// Tracks the deferred first read (``SerializableTracking/deferredRead``) now, as a read made now would be: the
    /// SIREAD lock first, then the writers of versions of the key this transaction does not see. The value read
    /// then is the one a read now returns (same snapshot; versions newer than a registered snapshot are never
    /// collected). Nothing to do while this transaction's own pending write on the key stands.
    func trackDeferredRead(_ h: SerializableXact) throws {
        guard let key = serializable?.deferredRead else { return }
        if let chain = serializable!.deferredReadWrittenAt, written.contains(ObjectIdentifier(chain)) { return }
        serializable!.deferredRead = nil
        serializable!.deferredReadWrittenAt = nil
        trackPoint(key, h)
        let (_, writers) = db.readNotingWriters(key, txid: txid, snapshot: snapshot!)
        guard !writers.isEmpty else { return }
        if let e = db.ssi.readFoundNewer(h, writers: writers, edge: ConflictEdge(key: key, scanned: nil)) {
            throw abort(e)
        }
    }

    func trackPoint(_ key: Bytes, _ h: SerializableXact) {
        guard !serializable!.escalated, serializable!.reads.insert(key).inserted else { return }
        if serializable!.reads.count > db.ssi.limits.maxPointLocksPerTransaction {
            // Memory bound: one whole-keyspace lock replaces the points (added before they are removed).
            db.ssi.escalate(h, pointKeys: serializable!.reads)
            serializable!.reads = []
            serializable!.escalated = true
        } else {
            let owner = txid
            withSSI { $0.pointLocks.add(key, owner: owner) }
        }
    }

    /// After this transaction put its pending write on `key`: rw-antidependencies from concurrent readers.
    func serializableAfterWrite(_ key: Bytes, chain: KeyChain) throws {
        guard let h = trackedHandle else { return }
        try checkNotDoomed(h)
        serializable!.operations += 1
        assert(serializable!.lazySlot == nil, "a lazy transaction is read-only: it never writes")
        if serializable!.deferredRead == key {
            // First updater wins passed and the pending write stands: no version of the key newer than the
            // snapshot can be committed by another transaction before this one ends.
            serializable!.deferredReadWrittenAt = chain
        } else {
            try trackDeferredRead(h)
        }
        if let e = withSSI({ $0.checkWrite(h, key: key) }) { throw abort(e) }
    }

    /// Before a scan reads anything: an SIREAD lock on the whole `range` (narrowed afterwards if the limit
    /// stopped it). Returns the lock's id, or nil when untracked.
    func serializableBeginScan(_ range: KeyRange) throws -> UInt64? {
        guard let h = trackedHandle else { return nil }
        try checkNotDoomed(h)
        serializable!.operations += 1
        guard let h = registeredHandle(h) else { return nil }  // found safe at its registration
        try trackDeferredRead(h)
        let (id, escalated) = db.ssi.addRange(h, PredicateRange(range))
        guard let id else { return nil }
        if escalated, !serializable!.escalated {
            db.ssi.pointLocks.remove(serializable!.reads, owner: txid)
            serializable!.reads = []
            serializable!.escalated = true
        }
        return id
    }

    /// A scan stopped by its limit after `lastKey` read nothing beyond it: its lock covers only up to `lastKey`.
    func serializableNarrowScan(_ id: UInt64, _ range: KeyRange, reverse: Bool, lastKey: Bytes) {
        guard let h = trackedHandle else { return }
        let narrower =
            reverse
            ? PredicateRange(lower: lastKey, upper: range.upper)
            : PredicateRange(lower: range.lower, upper: lastKey, upperInclusive: true)
        db.ssi.narrowRange(h, id: id, to: narrower)
    }

    /// The SSI record to run the pre-commit with, or nil if untracked. A deferred first read is tracked now, unless
    /// it was the transaction's only operation (a single read needs no SIREAD lock) or its own write covers it.
    func serializableCommitHandle() throws -> SerializableXact? {
        guard let h = trackedHandle else { return nil }
        // Lazy and never registered: its one read (if any) needs no tracking; `serializableEnd` frees the slot.
        if serializable!.lazySlot != nil {
            serializable!.deferredRead = nil
            return nil
        }
        if serializable!.deferredRead != nil {
            if serializable!.operations == 1 && writeOrder.isEmpty {
                serializable!.deferredRead = nil
            } else {
                try trackDeferredRead(h)
            }
        }
        return h
    }

    /// Suspends until this deferrable read-only transaction has a safe snapshot (taking a new snapshot each time
    /// one turns out unsafe). Never blocks a thread. Cancellation ends the wait with `CancellationError`; the
    /// transaction is not aborted and has no snapshot (a later read waits again).
    nonisolated(nonsending) func waitForSafeSnapshot() async throws {
        while true {
            _ = ensureSnapshot()
            guard let h = trackedHandle else { return }
            // `.pending` means the wait was cancelled: drop the snapshot as for `.unsafe`, then throw.
            if await db.ssi.waitForSafety(h) == .safe { return }
            db.ssi.end(h, pointKeys: [])
            serializable = nil
            releaseSnapshotAndCollect(touched: [])
            try Task.checkCancellation()
        }
    }

    /// At the end of the transaction: an aborted or rolled-back one leaves SSI at once; a committed one was
    /// handed over at commit (its locks stay until no overlapping transaction lives), unless it was untracked.
    func serializableEnd(committed: Bool) {
        // Moved out (leaving nil), not copied: a copy retained the record, the read set and the deferred key only
        // to release them again.
        guard let t = serializable.take() else { return }
        if let lazySlot = t.lazySlot {
            // Never registered: no record, no SIREAD lock.
            withSSI { $0.endLazyReadOnly(lazySlot: lazySlot, registered: false, stripe: liveStripe) }
            return
        }
        if committed && t.xact.isTracked { return }
        let owner = txid
        if committed {
            if !t.reads.isEmpty { withSSI { $0.pointLocks.remove(t.reads, owner: owner) } }
        } else {
            withSSI { $0.end(t.xact, pointKeys: t.reads) }
        }
    }
}

extension Database {
    /// What `txid` reads at `key` at `snapshot` (own pending write first, no dirty reads), plus the writers of the
    /// versions it did not see: committed after the snapshot, or pending (owned by another transaction).
    /// `hint`: the key's chain as the scan index had it (see ``read(_:txid:snapshot:dirty:chain:)``).
    func readNotingWriters(_ key: Bytes, txid: UInt64, snapshot: UInt64, chain hint: KeyChain? = nil)
        -> (Bytes?, [UInt64])
    {
        var hint = hint
        while true {
            let fromHint = hint != nil
            guard let chain = hint ?? directory.load(key) else { return (nil, []) }
            hint = nil
            let result: (Bytes?, [UInt64])? = chain.state.withLock { s in
                if s.retired { return nil }
                var writers: [UInt64] = []
                if let p = s.pending, p.owner != txid { writers.append(p.owner) }
                s.forEachVersionNewestFirst { v in
                    guard v.commitTS > snapshot else { return false }
                    writers.append(v.creator)
                    return true
                }
                return (s.read(txid: txid, snapshot: snapshot, dirty: false), writers)
            }
            if let result { return result }
            // A retired hint is already out of the directory (or on its way out, by GC): just look the key up.
            if !fromHint { forget(retired: chain) }
        }
    }
}

@_spi(Testing)
extension Database {
    /// Takes the SSI lock on a thread of its own and keeps it until the returned closure is called; returns once
    /// the lock is held (suspends, never blocks the caller's thread). For tests of the paths that must not wait
    /// for that lock.
    nonisolated(nonsending) public func holdSerializableLock() async -> @Sendable () -> Void {
        let release = DispatchSemaphore(value: 0)
        let ssi = self.ssi
        await withCheckedContinuation { (held: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                ssi.withLockHeldForTesting {
                    held.resume()
                    release.wait()
                }
            }
        }
        return { release.signal() }
    }

    /// Returns once deferrable transaction `transaction` is suspended waiting for a safe snapshot.
    nonisolated(nonsending) public func waitUntilDeferred(_ transaction: TransactionID) async {
        await ssi.waitUntilDeferred(transaction.rawValue)
    }
}

@_spi(Testing)
extension Transaction {
    /// ``commit()`` returning the commit sequence number — the new version of every key written — or nil if
    /// nothing was written (for history recording in tests and the lab).
    @discardableResult
    nonisolated(nonsending) public func commitReturningCommitVersion() async throws -> UInt64? {
        try await commitReturningVersion()
    }
}
