import IsoKVCore
import IsoKVSync
import Synchronization

/// Serializable snapshot isolation: SIREAD locks, rw-antidependency edges, dangerous-structure detection, safe
/// snapshots for read-only transactions, and the cleanup of committed transactions' SSI state. See SSI/DESIGN.md.
///
/// Entry points, by purpose (all called by `Transaction`, only for `.serializable` transactions that are tracked):
/// - life cycle: ``tryBeginSafeReadOnly(oracle:hint:stripe:)`` (lock-free), ``beginLazyReadOnly(hint:stripe:)``
///   (lock-free; ``registerLate(_:snapshot:)`` at a second operation, ``endLazyReadOnly(lazySlot:registered:stripe:)``),
///   ``begin(txid:readOnly:oracle:hint:stripe:)``,
///   ``commit(_:pointKeys:publish:)``, ``finishReadOnly(_:pointKeys:)`` (a tracked read-only commit, never waits),
///   ``end(_:pointKeys:)`` (abort / rollback), ``waitForSafety(_:)`` (deferrable);
/// - reads: `pointLocks.add` before reading, ``readFoundNewer(_:writers:edge:)`` after;
///   ``addRange(_:_:)`` / ``narrowRange(_:id:to:)`` for scans; ``escalate(_:pointKeys:)`` under memory pressure;
/// - writes: ``checkWrite(_:key:)``.
///
/// Locks: the SSI lock (`state`) sits below the oracle's commit lock and above the snapshot-registry stripes, the
/// point-lock stripes, the read-only commit queue and (in-memory installs) chain locks — the full order is in the
/// engine's DESIGN.md, "Lock order". Never held across an await.
final class SSIManager: Sendable {
    /// Global SSI state (PostgreSQL's `SerializableXactHashLock` + `SerializableFinishedListLock` in one). Taken
    /// through ``locked(_:)``, which first hands over the read-only commits waiting in `finishedReadOnly`.
    private let state: Locked<SSIState>
    /// Read-only transactions that committed while the SSI lock was busy, with their point SIREAD keys, waiting for
    /// the next holder of the SSI lock to record the commit (``finishReadOnly(_:pointKeys:)``). A leaf lock, taken
    /// after the SSI lock or alone. `finishedReadOnlyCount` mirrors its length (stored inside it), so that the SSI
    /// lock's holders only look when something is there.
    private let finishedReadOnly = Locked<[Released]>([])
    private let finishedReadOnlyCount = Atomic<Int>(0)
    /// The begin queue: serializable transactions that took their snapshot since the SSI lock last drained it, in
    /// snapshot order (each begin registers its snapshot and appends its record in one critical section of this
    /// lock). A begin never takes the SSI lock; the next holder registers the records (``drainBeginsLocked(_:)``),
    /// and every serializable commit publishes its writes *inside* this lock and registers what it drained before
    /// its commit mark. So a begin is ordered before or after each publication exactly as its snapshot is, which
    /// keeps "T committed before S's snapshot ⇔ `T.commitSeq < S.beginSeq`" (SSI/DESIGN.md, "The SSI clock").
    /// Held while taking a snapshot-registry stripe and, around a publication, chain locks (installs); taken after
    /// the SSI lock or alone. `beginsCount` mirrors its length (stored inside it; the SSI lock's holders load it
    /// inside the SSI lock and look only when something is there).
    private let begins = Locked<[SerializableXact]>([])
    private let beginsCount = Atomic<Int>(0)
    /// `SSIState.prepared.count`, stored inside the SSI lock (sequentially consistent): a durable commit that is
    /// not serializable publishes without the SSI lock while it is 0 (``publishDurable(_:publish:)``).
    private let preparedCount = Atomic<Int>(0)
    /// Mirrors of the SSI state for the lock-free begin of a safe read-only transaction.
    let fastPath = SSIFastPath()
    /// Point SIREAD locks, striped; read paths add to it without the global lock.
    let pointLocks = PointLockTable()
    let limits: SerializableLimits
    let counters = SSICounters()
    /// The database's oracle: the published commit, read for the bound of the lazy read-only snapshots.
    private let oracle: Oracle
    /// The snapshots of read-only transactions not registered yet (``beginLazyReadOnly(hint:stripe:)``): a lower
    /// bound of each, in the slots' protocol (the oracle's `horizon()` has the argument). While one is there, a
    /// committed record it may still need is neither removed nor dropped from the summary
    /// (``lazyBound()``); it leaves at registration or at the end.
    let lazySlots = SnapshotSlots()

    init(limits: SerializableLimits, oracle: Oracle) {
        self.limits = limits
        self.oracle = oracle
        self.state = Locked(SSIState(fastPath: fastPath, limits: limits))
    }

    // MARK: Read-only transactions registered late

    /// Begins a read-only serializable transaction without registering it (SSI/DESIGN.md, "Read-only
    /// transactions registered late"): its snapshot, and a lower bound of it in ``lazySlots``. Returns nil when
    /// every lazy slot is taken (then the caller begins as usual, through the begin queue).
    ///
    /// Order (all sequentially consistent): load `published` as `b`, claim a lazy slot holding `b`, then register
    /// the snapshot (which loads `published` again, so `snapshot ≥ b`). ``lazyBound()`` loads `published` and then
    /// the slots: if it sees the claim, the bound is `≤ b`; if not, its load of `published` came before ours, so
    /// the bound is `≤ snapshot`. Either way no record a lazy transaction cannot see is released.
    func beginLazyReadOnly(hint: Int, stripe: Int) -> (snapshot: UInt64, slot: Int, lazySlot: Int)? {
        let b = oracle.published.load(ordering: .sequentiallyConsistent)
        guard let lazySlot = lazySlots.claim(b, hint: hint) else { return nil }
        let (snapshot, slot) = oracle.registerSnapshotFast(hint: hint, stripe: stripe)
        return (snapshot, slot, lazySlot)
    }

    /// Ends a lazy read-only transaction that was never registered (`registered`: false) or frees its lazy slot
    /// after its registration (true).
    func endLazyReadOnly(lazySlot: Int, registered: Bool, stripe: Int) {
        lazySlots.release(lazySlot)
        if !registered { counters.neverRegistered.add(1, stripe: stripe) }
    }

    /// A bound at or below every lazy read-only transaction's snapshot: the smallest lazy slot, or `published`
    /// when there is none. A committed record with `commitTS` at or below it is visible to all of them.
    func lazyBound() -> UInt64 {
        let p = oracle.published.load(ordering: .sequentiallyConsistent)
        guard let oldest = lazySlots.oldest() else { return p }
        return Swift.min(p, oldest)
    }

    /// Registers the lazy read-only transaction `rec` (txid assigned now) whose snapshot is `snapshot`, at its
    /// second operation: at the place its snapshot has among the commits (``SSIState/registerLateLocked(_:snapshot:counters:)``).
    /// The caller frees its lazy slot afterwards.
    func registerLate(_ rec: SerializableXact, snapshot: UInt64) {
        locked { s in s.registerLateLocked(rec, snapshot: snapshot, counters: counters) }
        counters.registeredLate.add(1, ordering: .relaxed)
    }

    /// A read-only serializable transaction's begin without the SSI lock, when it is safe at once: returns its
    /// registered snapshot, or nil (then take the locked path, ``begin(txid:readOnly:oracle:stripe:)``).
    ///
    /// Safe means no read-write serializable transaction is concurrent with the snapshot. The queued begin checks
    /// `activeReadWrite.isEmpty` when its record is registered, at its place in snapshot order. Here, with `a` the
    /// number of active read-write serializable transactions (queued ones included) and `b` the count of their
    /// begins (sequentially consistent; a read-write begin stores `a`, then `b`, then registers its snapshot):
    /// load `b1`, load `a1`, register the snapshot, load `b2`; safe iff `a1 == 0 && b1 == b2`.
    /// Why that suffices: a read-write T concurrent with our snapshot registered its own before ours and had not
    /// committed when ours was taken. If T incremented `b` before our load of `b1`, it had stored `a` before that,
    /// so `a1 > 0` unless T had already left — committed, before our snapshot, so not concurrent. If T incremented
    /// `b` after our load of `b1`, it did so before registering its snapshot, hence before ours, so `b2 != b1`. Every serializable commit publishes inside the SSI lock before leaving
    /// `activeReadWrite`, so a transaction counted out of `a` is visible to a snapshot registered afterwards.
    /// The snapshot is registered as a `.snapshot` transaction's is (``Oracle/registerSnapshotFast(hint:stripe:)``:
    /// a lock-free slot searched from `hint`, or stripe `stripe` when every slot is taken); returns it with its
    /// slot (-1: the stripe).
    func tryBeginSafeReadOnly(oracle: Oracle, hint: Int, stripe: Int) -> (snapshot: UInt64, slot: Int)? {
        let b1 = fastPath.readWriteBegins.load(ordering: .sequentiallyConsistent)
        guard fastPath.activeReadWrite.load(ordering: .sequentiallyConsistent) == 0 else { return nil }
        let (snap, slot) = oracle.registerSnapshotFast(hint: hint, stripe: stripe)
        if fastPath.readWriteBegins.load(ordering: .sequentiallyConsistent) == b1 { return (snap, slot) }
        _ = oracle.unregisterSnapshotFast(snap, slot: slot, stripe: stripe)
        return nil
    }

    /// Runs `body` with the SSI lock held, after registering the transactions that began meanwhile and recording
    /// the read-only commits handed over meanwhile (in that order: a queued commit's record may be a queued begin).
    private func locked<R>(_ body: (inout SSIState) throws -> R) rethrows -> R {
        try state.withLock { s in
            catchUpLocked(&s)
            return try body(&s)
        }
    }

    /// Registers the queued begins, then records the queued read-only commits. Every holder of the SSI lock calls
    /// it first, so that the state it works on knows every transaction that has begun (any transaction whose lock,
    /// pending write or record it can meet began — and queued itself — before).
    @inline(__always)
    private func catchUpLocked(_ s: inout SSIState) {
        if beginsCount.load(ordering: .acquiring) > 0 { drainBeginsLocked(&s) }
        if finishedReadOnlyCount.load(ordering: .acquiring) > 0 { drainFinishedReadOnlyLocked(&s) }
    }

    /// Registration happens inside the queue's lock (it only touches the SSI state, whose lock is held), so that
    /// the queue keeps its buffer: taking the array out left the next begin to allocate a new one.
    private func drainBeginsLocked(_ s: inout SSIState) {
        begins.withLock { q in registerQueuedLocked(&q, &s) }
    }

    /// Registers the queued begins `q` in queue order and empties it, keeping its buffer (the caller holds the SSI
    /// lock and the begin queue's lock).
    private func registerQueuedLocked(_ q: inout [SerializableXact], _ s: inout SSIState) {
        for rec in q { s.registerBeginLocked(rec, counters: counters) }
        q.removeAll(keepingCapacity: true)
        beginsCount.store(0, ordering: .releasing)
    }

    /// Runs `publish` (the engine's install + publish, or nothing) inside the begin queue's lock, then registers
    /// the begins it drained there — before the caller's commit mark. A begin queued before the publication did
    /// not see it and gets a `beginSeq` below the commit mark; one queued after saw it and is registered by a later
    /// holder of the SSI lock, above the mark.
    private func publishOrderedLocked(_ s: inout SSIState, _ publish: () -> Void) {
        begins.withLock { q in
            publish()
            if !q.isEmpty { registerQueuedLocked(&q, &s) }
        }
    }

    private func drainFinishedReadOnlyLocked(_ s: inout SSIState) {
        let finished = finishedReadOnly.withLock { q -> [Released] in
            finishedReadOnlyCount.store(0, ordering: .releasing)
            defer { q = [] }
            return q
        }
        for f in finished { s.commitReadOnlyLocked(f.txid, pointKeys: f.keys) }
    }

    // MARK: Life cycle

    /// Takes a serializable transaction's snapshot and queues its record for registration, without the SSI lock
    /// (the begin queue's short lock only). The next holder of the SSI lock registers it: `beginSeq`, the active
    /// sets, and for a read-only transaction its possibly unsafe partners — or, when no read-write serializable
    /// transaction is active at that point of the queue, a safe snapshot (`safe`; the transaction is then
    /// never tracked). Until then the transaction may already read and write: everything that can meet it (its
    /// point locks, its pending writes, its own calls) happens after its queueing, and every SSI critical section
    /// drains the queue first.
    ///
    /// The snapshot is registered like a `.snapshot` transaction's (a lock-free slot searched from `hint`, or
    /// stripe `stripe` when every slot is taken: ``Oracle/registerSnapshotFast(hint:stripe:)``), inside the queue's
    /// lock, so that it is taken in queue order.
    func begin(txid: UInt64, readOnly: Bool, oracle: Oracle, hint: Int, stripe: Int) -> (
        snapshot: UInt64, slot: Int, xact: SerializableXact
    ) {
        let rec = SerializableXact(txid: txid, readOnly: readOnly)
        let (snapshot, slot) = begins.withLock { q -> (UInt64, Int) in
            if !readOnly {
                // Before the snapshot, in this order (tryBeginSafeReadOnly relies on it): count the transaction
                // as active, then as begun. The active count drops when the record leaves `activeReadWrite`.
                fastPath.activeReadWrite.add(1, ordering: .sequentiallyConsistent)
                fastPath.readWriteBegins.add(1, ordering: .sequentiallyConsistent)
            }
            let registered = oracle.registerSnapshotFast(hint: hint, stripe: stripe)
            q.append(rec)
            beginsCount.store(q.count, ordering: .releasing)
            return registered
        }
        return (snapshot, slot, rec)
    }

    /// The newest published commit, read inside the SSI lock right after a publication: the commit's `ts` (in
    /// memory the commit lock is held too, so nothing else publishes in between).
    @inline(__always)
    private func publishedNow() -> UInt64 { oracle.published.load(ordering: .sequentiallyConsistent) }

    /// Pre-commit check and commit mark (PostgreSQL's `PreCommit_CheckForSerializationFailure`), then `publish`
    /// (the engine's install + publish, run inside the SSI lock so that the commit mark and the visibility of the
    /// writes are one event on the SSI clock). Called under the oracle's commit lock when the transaction wrote.
    /// Returns the error to abort with, or nil if committed.
    func commit(_ h: SerializableXact, pointKeys: [Bytes], publish: () -> Void) -> IsoKVError? {
        let (error, release) = locked { s -> (IsoKVError?, SSICleanup) in
            // Found safe meanwhile (read-only): no longer tracked, nothing to check.
            guard s.xacts.contains(h.txid) else {
                publishOrderedLocked(&s, publish)
                return (nil, SSICleanup())
            }
            // `h` is the registered record (one object: SerializableXact).
            if let e = s.preCommitLocked(h, counters: counters) { return (e, SSICleanup()) }
            publishOrderedLocked(&s, publish)
            s.markCommittedLocked(h, pointKeys: pointKeys, commitTS: publishedNow())
            return (nil, s.cleanupLocked(lazyBound: lazyBound))
        }
        self.release(release)
        return error
    }

    /// Commits a tracked read-only transaction (declared `readOnly`, so it wrote nothing and cannot have been doomed:
    /// only writers are chosen as victims by others). Its record only needs a commit mark on the SSI clock and its
    /// point SIREAD keys; it stays until cleanup like any committed transaction, because its reads can still be the
    /// first edge of a dangerous structure.
    ///
    /// Never waits for the SSI lock: when it is busy, the commit is queued and recorded by the next holder. A commit
    /// mark recorded later than the real commit is conservative: the record is kept longer, and a writer that began
    /// after the real commit may add an edge from this reader — which cannot complete a dangerous structure, because
    /// one with a read-only `T_in` needs `T_out` committed before `T_in`'s snapshot, while `T_out` committed after the
    /// writer's snapshot (SSI/DESIGN.md, "Read-only commits").
    func finishReadOnly(_ h: SerializableXact, pointKeys: [Bytes]) {
        if let release = state.withLockIfAvailable({ s -> SSICleanup in
            catchUpLocked(&s)
            s.commitReadOnlyLocked(h.txid, pointKeys: pointKeys)
            return s.cleanupLocked(lazyBound: lazyBound)
        }) {
            self.release(release)
            return
        }
        finishedReadOnly.withLock { q in
            q.append((h.txid, pointKeys))
            finishedReadOnlyCount.store(q.count, ordering: .releasing)
        }
        counters.queuedReadOnlyCommits.add(1, ordering: .relaxed)
    }

    /// Runs `body` with the SSI lock held on the state as it is, plus the read-only commits and the begins queued
    /// for the next holder (each taken under its queue's lock, after the SSI lock). Unlike ``locked(_:)`` it
    /// records nothing: for the consistency checker (Database+Check.swift), which only reads, and its test hooks.
    func withUnrecordedState<R>(
        _ body: (inout SSIState, _ queuedReadOnlyCommits: [Released], _ queuedBegins: QueuedBegins) -> R
    ) -> R {
        state.withLock { s in
            let commits = finishedReadOnly.withLock { $0 }
            let begun = begins.withLock { q in
                // The active count is loaded here: a begin adds to it inside this lock, a record leaves it
                // inside the SSI lock, so with both held it matches the state and the queue exactly.
                QueuedBegins(
                    entries: q.map { QueuedBegin(txid: $0.txid, readOnly: $0.readOnly) },
                    activeReadWriteCount: fastPath.activeReadWrite.load(ordering: .sequentiallyConsistent))
            }
            return body(&s, commits, begun)
        }
    }

    /// The begin queue as the checker sees it, with `fastPath.activeReadWrite` as loaded under the queue's lock.
    struct QueuedBegins {
        let entries: [QueuedBegin]
        let activeReadWriteCount: Int
    }

    /// Test hook (checker corruption): runs `body` with the SSI lock held, after registering queued begins and
    /// recording queued read-only commits, as every other holder does.
    func withCaughtUpStateForTesting<R>(_ body: (inout SSIState) -> R) -> R {
        locked(body)
    }

    /// A transaction in the begin queue, as the checker sees it.
    struct QueuedBegin {
        let txid: UInt64
        let readOnly: Bool
    }

    /// Test hook: runs `body` on the calling thread (one the caller owns, never a task's) with the SSI lock held.
    func withLockHeldForTesting(_ body: () -> Void) {
        locked { _ in body() }
    }

    /// The first half of ``commit(_:pointKeys:publish:)`` for a durable database: the pre-commit check, then
    /// `prepared` — from here on the transaction cannot be chosen as a victim, because its record is about to be
    /// written to the log. `pointKeys` (its point SIREAD keys) are kept in the record, for whichever publication
    /// marks it committed. Returns the error to abort with, or nil. Then, under the commit lock, store the commit's
    /// `ts` in `h.preparedTS`; call ``finishPrepared(_:commitTS:publish:)`` once the record is durable, or
    /// ``end(_:pointKeys:)`` if logging it failed.
    func prepare(_ h: SerializableXact, pointKeys: [Bytes]) -> IsoKVError? {
        locked { s -> IsoKVError? in
            guard let rec = s.xacts[h.txid] else { return nil }
            if let e = s.preCommitLocked(rec, counters: counters) { return e }
            rec.prepared = true
            rec.pointKeys = pointKeys
            s.prepared.append(rec)
            preparedCount.store(s.prepared.count, ordering: .sequentiallyConsistent)
            return nil
        }
    }

    /// The second half, once the record of commit `commitTS` is durable (nil: the transaction had nothing left to
    /// log, every write undone by savepoint rollbacks): publishes inside the SSI lock, as
    /// ``commit(_:pointKeys:publish:)`` does, and marks it committed — unless a later commit's publication, which
    /// made its writes visible too, already did (``commitPreparedLocked(_:through:own:publish:)``).
    func finishPrepared(_ h: SerializableXact, commitTS: UInt64?, publish: () -> Void) {
        let release = locked { s -> SSICleanup in
            guard let rec = s.xacts[h.txid], rec.prepared else {
                // Not tracked any more, or marked committed by an earlier publication that covered its `ts`.
                publishOrderedLocked(&s, publish)
                return SSICleanup()
            }
            guard let commitTS else {
                // Nothing written: nothing published, no timestamp order to keep; marked now.
                _ = s.preCommitLocked(rec, counters: counters)
                publishOrderedLocked(&s, publish)
                rec.prepared = false
                unlistPreparedLocked(&s)
                s.markCommittedLocked(rec, pointKeys: rec.pointKeys, commitTS: publishedNow())
                return s.cleanupLocked(lazyBound: lazyBound)
            }
            return commitPreparedLocked(&s, through: commitTS, own: rec, publish: publish)
        }
        self.release(release)
    }

    /// The publication of a durable commit `ts` that is not serializable (`publish` makes every commit up to `ts`
    /// visible). While some serializable transaction is prepared it goes through the SSI lock, so that the
    /// prepared ones at or below `ts` are marked committed in the same event; otherwise it runs `publish` alone.
    ///
    /// Why the lock-free check is enough: a prepared transaction with a smaller `ts` stored the count (inside the
    /// SSI lock, sequentially consistent) before its commit-lock section, which came before this commit's, and
    /// this load comes after that; so it reads at least that count, or a later one stored when the transaction
    /// was marked (by a publication that covered it).
    func publishDurable(_ ts: UInt64, publish: () -> Void) {
        guard preparedCount.load(ordering: .sequentiallyConsistent) > 0 else {
            publish()
            return
        }
        let release = locked { s in commitPreparedLocked(&s, through: ts, own: nil, publish: publish) }
        self.release(release)
    }

    /// Publishes a durable commit `ts` and marks every prepared transaction with a `ts` at or below it committed,
    /// in timestamp order (SSI/DESIGN.md, "Durable databases: prepared transactions"). Two commits acknowledged by
    /// the same fsync resume in any order, and `publish` (`published = max(published, ts)`) makes every commit up
    /// to `ts` visible: the later one's publication exposes the earlier one's writes. Marking the earlier one here
    /// keeps "T committed before S's snapshot ⇔ `T.commitSeq < S.beginSeq`": without it a serializable snapshot
    /// taken in between would see a commit that the SSI clock places after it, and the read-only rules would miss
    /// a dangerous structure (`DurableSerializableConcurrentTests`, Fekete's read-only anomaly). Each such
    /// commit's record is durable: the log acknowledges in log order, which is `ts` order.
    ///
    /// A prepared record whose `preparedTS` reads 0 got (or will get) its `ts` in a commit-lock section after
    /// this commit's, so its `ts` is above `ts`. Conflicts that arrived while a transaction was prepared are
    /// checked again first: pivots between it and a concurrent reader are doomed, exactly as at a pre-commit check.
    /// `own`: the publishing commit's record (nil: a commit that is not serializable).
    private func commitPreparedLocked(
        _ s: inout SSIState, through ts: UInt64, own: SerializableXact?, publish: () -> Void
    ) -> SSICleanup {
        var due: [SerializableXact] = []
        for rec in s.prepared {
            let t = rec.preparedTS.load(ordering: .acquiring)
            if t != 0 && t <= ts { due.append(rec) }
        }
        if due.count > 1 {
            due.sort { $0.preparedTS.load(ordering: .relaxed) < $1.preparedTS.load(ordering: .relaxed) }
        }
        for rec in due { _ = s.preCommitLocked(rec, counters: counters) }  // no doom once prepared
        publishOrderedLocked(&s, publish)
        guard !due.isEmpty else { return SSICleanup() }
        for rec in due {
            rec.prepared = false
            s.markCommittedLocked(rec, pointKeys: rec.pointKeys, commitTS: rec.preparedTS.load(ordering: .relaxed))
        }
        unlistPreparedLocked(&s)
        let forOthers = own == nil ? due.count : due.count - 1
        if forOthers > 0 { counters.preparedMarkedByLaterCommit.add(forOthers, ordering: .relaxed) }
        return s.cleanupLocked(lazyBound: lazyBound)
    }

    /// Drops the records whose `prepared` was just cleared from `SSIState.prepared` and stores the new count in
    /// ``preparedCount`` (the one place both change after `prepare`).
    private func unlistPreparedLocked(_ s: inout SSIState) {
        s.prepared.removeAll { !$0.prepared }
        preparedCount.store(s.prepared.count, ordering: .sequentiallyConsistent)
    }

    /// Forgets an aborted or rolled-back transaction (its edges go with it: an aborted transaction is in no cycle).
    func end(_ h: SerializableXact, pointKeys: some Sequence<Bytes>) {
        let release = locked { s -> SSICleanup in
            guard let rec = s.xacts[h.txid] else { return SSICleanup() }
            if rec.prepared {
                // Its log write failed (so did every later one: the log's failed state is sticky).
                rec.prepared = false
                unlistPreparedLocked(&s)
            } else if rec.isCommitted {
                // Marked committed by a later commit's publication, yet its own log wait failed: impossible, as the
                // log's acknowledgments are a prefix of it in every mode (IsoKVStorage DESIGN, "Failures"). Were it
                // to happen, the record stays until the cleanup (more conflicts, never fewer).
                assertionFailure("tx\(h.txid) failed after a later commit marked it committed")
                return SSICleanup()
            }
            s.removeLocked(h.txid, summarize: false)
            return s.cleanupLocked(lazyBound: lazyBound)
        }
        pointLocks.remove(pointKeys, owner: h.txid)
        self.release(release)
    }

    /// Suspends (never blocks a thread) until a read-only transaction's snapshot is known safe or unsafe; returns
    /// `.pending` if the task was cancelled first.
    func waitForSafety(_ h: SerializableXact) async -> SnapshotSafety {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<SnapshotSafety, Never>) in
                let resumeNow: SnapshotSafety? = locked { s in
                    guard let rec = s.xacts[h.txid] else { return .safe }
                    if rec.safety != .pending { return rec.safety }
                    // Checked under the SSI lock, where the cancellation handler looks for the continuation: either
                    // the handler runs after this section and finds it, or the task is already cancelled here.
                    if Task.isCancelled { return .pending }
                    s.deferred[h.txid] = c
                    for o in s.deferredObservers.removeValue(forKey: h.txid) ?? [] { o.resume() }
                    return nil
                }
                if let resumeNow { c.resume(returning: resumeNow) }
            }
        } onCancel: {
            // Whoever removes the continuation from `deferred` resumes it: here, or the one deciding safety.
            locked { s in s.deferred.removeValue(forKey: h.txid) }?.resume(returning: .pending)
        }
    }

    /// Test hook: returns once `txid` is suspended waiting for a safe snapshot.
    func waitUntilDeferred(_ txid: UInt64) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = locked { s -> Bool in
                if s.deferred[txid] != nil { return true }
                s.deferredObservers[txid, default: []].append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    // MARK: Reads

    /// A tracked read of `what` found versions of it written by `writers` (committed after the reader's snapshot,
    /// or still pending): flags reader →rw writer for each serializable one. Returns the error to abort with.
    func readFoundNewer(_ h: SerializableXact, writers: [UInt64], edge: ConflictEdge) -> IsoKVError? {
        locked { s in
            for w in writers where w != h.txid {
                if s.xacts[w] == nil, let summarized = s.summary.writers[w] {
                    if let e = s.flagSummarizedWriterLocked(
                        reader: h.txid, writer: w, summarized, edge: edge,
                        counters: counters)
                    {
                        return e
                    }
                    continue
                }
                if let e = s.flagConflictLocked(
                    reader: h.txid, writer: w, edge: edge, me: h.txid, phase: .read,
                    counters: counters)
                {
                    return e
                }
            }
            return nil
        }
    }

    /// Registers an SIREAD lock on `range` for `h`; returns its id (nil if `h` is no longer tracked: found safe
    /// meanwhile). Past `maxRangesPerTransaction` ranges, the transaction's ranges are replaced by one
    /// whole-keyspace lock.
    func addRange(_ h: SerializableXact, _ range: PredicateRange) -> (id: UInt64?, escalated: Bool) {
        locked { s in
            // Re-check under the lock: a lock added for an untracked owner would never be removed.
            guard s.xacts[h.txid] != nil else { return (nil, false) }
            s.nextRangeID += 1
            let id = s.nextRangeID
            var count = 0
            for r in s.ranges where r.owner == h.txid { count += 1 }
            if count >= limits.maxRangesPerTransaction {
                s.escalateLocked(h.txid, id: id)
                counters.escalations.add(1, ordering: .relaxed)
                return (id, true)
            }
            s.ranges.append(RangeLock(owner: h.txid, id: id, range: range))
            return (id, false)
        }
    }

    /// A scan stopped by its limit covers only what it read: replace its range by `narrower` (a subset).
    func narrowRange(_ h: SerializableXact, id: UInt64, to narrower: PredicateRange) {
        locked { s in
            if let i = s.ranges.firstIndex(where: { $0.id == id && $0.owner == h.txid }) {
                s.ranges[i].range = narrower
            }
        }
    }

    /// Replaces `h`'s point locks by one whole-keyspace SIREAD lock (added before the points are removed, so the
    /// coverage never has a gap).
    func escalate(_ h: SerializableXact, pointKeys: some Sequence<Bytes>) {
        locked { s in
            guard s.xacts[h.txid] != nil else { return }
            s.nextRangeID += 1
            s.escalateLocked(h.txid, id: s.nextRangeID)
        }
        counters.escalations.add(1, ordering: .relaxed)
        pointLocks.remove(pointKeys, owner: h.txid)
    }

    // MARK: Writes

    /// After `h` put its pending write on `key`: flags reader →rw `h` for every concurrent serializable reader
    /// holding an SIREAD lock on the key or a range covering it. Returns the error to abort with.
    ///
    /// Without the SSI lock when nobody else holds an SIREAD lock on the key and no range lock exists at all (the
    /// common case). That is enough: a reader adds its lock (point lock in its stripe, or range lock under the SSI
    /// lock, counted in `fastPath.rangeLocks`) before it reads the chain or the index, and we put the pending
    /// write (and the key in the index) before looking. Either its read came after our write in the chain's (or
    /// the index's) lock order, and then the reader sees the pending write itself and flags the edge
    /// (``readFoundNewer(_:writers:edge:)``), or it came before, and then its lock was added before our look.
    func checkWrite(_ h: SerializableXact, key: Bytes) -> IsoKVError? {
        // No point lock anywhere (the usual case: one-read transactions and reads of a key then written take
        // none): the stripe's lock and lookup are skipped (`PointLockTable.entries` has the argument).
        let holders = pointLocks.isEmpty ? [] : pointLocks.holders(key)
        // Loads in this order: a summarization sets `summarized` before it lowers the range count or removes the
        // point locks it moves into the summary.
        if holders.allSatisfy({ $0 == h.txid }) && fastPath.rangeLocks.load(ordering: .sequentiallyConsistent) == 0
            && !fastPath.summarized.load(ordering: .sequentiallyConsistent)
        {
            return nil
        }
        return locked { s in
            if let reader = s.summary.newestReader(covering: key), let me = s.xacts[h.txid],
                reader.commitSeq > me.beginSeq,
                let e = s.flagSummarizedReaderLocked(
                    writer: h.txid, reader: reader, edge: ConflictEdge(key: key),
                    counters: counters)
            {
                return e
            }
            var readers: [(UInt64, ConflictEdge)] = []
            for r in holders where r != h.txid { readers.append((r, ConflictEdge(key: key))) }
            for lock in s.ranges where lock.owner != h.txid && lock.range.contains(key) {
                readers.append((lock.owner, ConflictEdge(key: key, scanned: lock.range)))
            }
            guard !readers.isEmpty, let me = s.xacts[h.txid] else { return nil }
            for (r, edge) in readers {
                guard let rec = s.xacts[r], !rec.isDoomed else { continue }
                // Only concurrent readers: one that committed before our snapshot precedes us anyway.
                if let c = rec.commitSeq, c < me.beginSeq { continue }
                if let e = s.flagConflictLocked(
                    reader: r, writer: h.txid, edge: edge, me: h.txid, phase: .write,
                    counters: counters)
                {
                    return e
                }
            }
            return nil
        }
    }

    /// The reason `h` was doomed, as the error its owner throws.
    func doomError(_ h: SerializableXact) -> IsoKVError {
        let e = locked { $0.xacts[h.txid]?.doom }
        counters.doomedPivots.add(1, ordering: .relaxed)
        return e
            ?? IsoKVError(
                .serializationFailure,
                "could not serialize access due to read/write dependencies among transactions")
    }

    // MARK: Cleanup

    /// What the cleanup removed from the SSI state and must still be removed from the point-lock table.
    typealias Released = (txid: UInt64, keys: [Bytes])

    /// Finishes a cleanup after the SSI lock is released: removes the point locks and frees the removed records
    /// (their dictionaries and sets are freed here, not inside the lock).
    func release(_ cleanup: consuming SSICleanup) {
        for r in cleanup.released { pointLocks.remove(r.keys, owner: r.txid) }
    }

    /// Statistics (takes the SSI lock and every point-lock stripe).
    func statistics() -> SerializableStatistics {
        var released = SSICleanup()
        var st = locked { s in
            released = s.cleanupLocked(lazyBound: lazyBound)
            var st = SerializableStatistics()
            for (_, r) in s.xacts {
                if r.isCommitted { st.retainedCommitted += 1 } else { st.active += 1 }
            }
            st.rangeLocks = s.ranges.count
            st.deferredWaiting = s.deferred.count
            st.safeReadOnlyLater = s.safeLater
            st.summarized = s.summarizations
            st.summarizedWriters = s.summary.writers.count
            st.summaryLocks = s.summary.points.count + s.summary.ranges.count + (s.summary.all == nil ? 0 : 1)
            return st
        }
        release(released)
        st.pointLocks = pointLocks.count
        st.safeReadOnlyAtBegin = counters.safeAtBegin.value
        st.readOnlyNeverRegistered = counters.neverRegistered.value
        st.readOnlyRegisteredLate = counters.registeredLate.load(ordering: .relaxed)
        st.escalations = counters.escalations.load(ordering: .relaxed)
        st.queuedReadOnlyCommits = counters.queuedReadOnlyCommits.load(ordering: .relaxed)
        st.preparedMarkedByLaterCommit = counters.preparedMarkedByLaterCommit.load(ordering: .relaxed)
        return st
    }
}

/// Bounds on SSI memory per transaction. Past a bound the transaction's SIREAD locks are escalated to one
/// whole-keyspace lock: correct, but every concurrent serializable write then creates an rw-antidependency from it
/// (more `40001`s, never a missed anomaly).
public struct SerializableLimits: Sendable, Hashable {
    /// Point SIREAD locks one transaction keeps before escalating (default 10 000).
    public var maxPointLocksPerTransaction = 10_000
    /// Range SIREAD locks (scans) one transaction keeps before escalating (default 64).
    public var maxRangesPerTransaction = 64
    /// Committed serializable transactions kept in full (records, SIREAD locks, edges) while an older transaction
    /// still overlaps them (default 10 000). Past it, the oldest are *summarized* as PostgreSQL does: their SIREAD
    /// locks merge into summary locks that remember only the newest commit per key, their edges become flags on
    /// their partners, and a writer keeps 24 bytes (its commit and its earliest conflict-out commit). Correct, with
    /// more false positives. 0 summarizes every committed transaction that cannot be cleaned up at once.
    public var maxRetainedCommitted = 10_000
    /// Summary point and range locks kept before they collapse into one whole-keyspace summary lock (default
    /// 100 000).
    public var maxSummaryLocks = 100_000
    public init(
        maxPointLocksPerTransaction: Int = 10_000, maxRangesPerTransaction: Int = 64,
        maxRetainedCommitted: Int = 10_000, maxSummaryLocks: Int = 100_000
    ) {
        self.maxPointLocksPerTransaction = max(1, maxPointLocksPerTransaction)
        self.maxRangesPerTransaction = max(1, maxRangesPerTransaction)
        self.maxRetainedCommitted = max(0, maxRetainedCommitted)
        self.maxSummaryLocks = max(1, maxSummaryLocks)
    }
}

/// Counters of SSI events (relaxed atomics: statistics, not synchronization).
final class SSICounters: Sendable {
    let rwOnRead = Atomic<Int>(0)
    let rwOnWrite = Atomic<Int>(0)
    let doomedPivots = Atomic<Int>(0)
    /// Counted on every read-only serializable begin that is safe at once — the hot path of read-mostly
    /// workloads — so striped: two threads never increment the same cache line.
    let safeAtBegin = StripedCounter(stripes: Oracle.stripeCount)
    /// Read-only commits handed over through the queue because the SSI lock was busy.
    let queuedReadOnlyCommits = Atomic<Int>(0)
    let escalations = Atomic<Int>(0)
    /// Lazy read-only transactions that ended without being registered (one read or none): striped, as
    /// `safeAtBegin`.
    let neverRegistered = StripedCounter(stripes: Oracle.stripeCount)
    /// Lazy read-only transactions registered at a later operation.
    let registeredLate = Atomic<Int>(0)
    /// Prepared transactions marked committed by a later commit's publication (durable databases).
    let preparedMarkedByLaterCommit = Atomic<Int>(0)
}

/// Where an rw-antidependency was found.
enum ConflictPhase: String { case read, write }

/// Atomics mirroring the SSI state, written with the SSI lock held (or, for the begin counts, the begin queue's), read
/// without it by
/// ``SSIManager/tryBeginSafeReadOnly(oracle:stripe:)``.
final class SSIFastPath: Sendable {
    /// Read-write serializable begins so far (counted at the begin, before its snapshot, in the begin queue's lock).
    let readWriteBegins = Atomic<UInt64>(0)
    /// `SSIState.activeReadWrite.count` plus the read-write transactions still in the begin queue: added at the
    /// begin (before its snapshot), subtracted inside the SSI lock when the record leaves `activeReadWrite`.
    let activeReadWrite = Atomic<Int>(0)
    /// `SSIState.ranges.count` (read by ``SSIManager/checkWrite(_:key:)``'s lock-free path).
    let rangeLocks = Atomic<Int>(0)
    /// `!SSIState.summary.isEmpty`: summary SIREAD locks exist (the lock-free write check must not skip them).
    let summarized = Atomic<Bool>(false)
}
