import IsoKVCore
/// Everything SSI keeps about serializable transactions, behind `SSIManager.state` (the SSI lock). The helpers
/// are `…Locked` mutating methods: only callable with the lock held.
struct SSIState {
    /// The SSI clock: bumped at every tracked begin and commit, inside the same critical section as the snapshot /
    /// the publication, so it orders snapshots and commits exactly as visibility does. It moves by 2, so every
    /// event has an even number and the odd one below a commit's is free for a read-only transaction registered
    /// late, whose snapshot falls just before that commit (`registerLateLocked`).
    var clock: UInt64 = 0
    /// Tracked serializable transactions: active ones, and committed ones some active one overlaps.
    /// Invariant: a committed record is kept while some active record has `beginSeq < commitSeq`, and a read-write
    /// one also while its `commitTS` is above some lazy read-only snapshot (cleanupLocked).
    var xacts = TxidMap<SerializableXact>()
    /// Range SIREAD locks, all transactions (a write checks each: O(ranges)).
    /// Invariant: every owner has a record in `xacts` (removed with it). Every change of the count is mirrored,
    /// inside the lock, into `fastPath.rangeLocks` (sequentially consistent) before the scan reads anything.
    var ranges: [RangeLock] = [] {
        didSet { fastPath.rangeLocks.store(ranges.count, ordering: .sequentiallyConsistent) }
    }
    var nextRangeID: UInt64 = 0
    /// Active read-write serializable transactions (what a new read-only one may be unsafe against).
    /// `fastPath.activeReadWrite` counts them plus the read-write begins still queued: a begin adds 1 before its
    /// snapshot, `leaveActiveReadWriteLocked` subtracts it (after the publication, for a commit).
    var activeReadWrite = TxidSet()
    /// The atomics read by `SSIManager.tryBeginSafeReadOnly` without the lock.
    let fastPath: SSIFastPath
    let limits: SerializableLimits
    /// Committed transactions folded into summaries (see `summarizeOldestLocked`). Non-empty ⇔
    /// `fastPath.summarized` (stored inside the lock).
    var summary = SSISummary()
    /// Summarizations so far (statistics).
    var summarizations = 0

    init(fastPath: SSIFastPath, limits: SerializableLimits) {
        self.fastPath = fastPath
        self.limits = limits
    }
    /// (beginSeq, txid) in begin order, with lazy deletion from `activeHead`: the first entry whose record is
    /// still active is the oldest active transaction.
    var activeQueue: [(begin: UInt64, txid: UInt64)] = []
    var activeHead = 0
    /// Committed txids in commit order, from `committedHead`: the cleanup pops from the front.
    var committedQueue: [UInt64] = []
    var committedHead = 0
    /// Deferrable read-only transactions suspended until their snapshot is safe or unsafe; resumed exactly once,
    /// by whoever resolves its safety (under this lock).
    var deferred: [UInt64: CheckedContinuation<SnapshotSafety, Never>] = [:]
    /// Test observers of `deferred` (see `SSIManager.waitUntilDeferred`).
    var deferredObservers: [UInt64: [CheckedContinuation<Void, Never>]] = [:]
    /// Point locks to remove after the lock is released (records removed while safe).
    var pendingRelease: [SSIManager.Released] = []
    /// Records removed since the last cleanup that own tables, keys or text (`SerializableXact.ownsStorage`), handed
    /// out by `cleanupLocked` so that they are freed after the SSI lock is released (freeing those is most of the
    /// cost of removing such a record). A record that owns nothing is freed where it is removed.
    var garbage: [SerializableXact] = []
    /// Read-only transactions found safe after their begin (statistics).
    var safeLater = 0
    /// Durable databases: the prepared transactions not marked committed yet, in prepare order. Invariant: exactly
    /// the records with `prepared` set; `SSIManager.preparedCount` mirrors the count (stored inside the lock).
    var prepared: [SerializableXact] = []

    // MARK: Begin and the active set

    /// Registers a transaction that took its snapshot since the last registration (`SSIManager.begin`, drained from
    /// the begin queue in snapshot order): the next tick of the SSI clock as `beginSeq`, and the active sets. A
    /// read-only transaction with no read-write serializable transaction active at this point is safe at once and
    /// not recorded; otherwise it lists them as possibly unsafe (and they list it).
    mutating func registerBeginLocked(_ rec: SerializableXact, counters: SSICounters) {
        let t = rec.txid
        clock += 2
        rec.beginSeq = clock
        if rec.readOnly {
            if activeReadWrite.isEmpty {
                rec.safe.store(true, ordering: .releasing)
                counters.safeAtBegin.add(1, stripe: Int(t % UInt64(Oracle.stripeCount)))
                return
            }
            rec.possibleUnsafe = activeReadWrite
            for rw in activeReadWrite { xacts[rw]?.possibleUnsafe.insert(t) }
        } else {
            activeReadWrite.insert(t)  // counted in fastPath.activeReadWrite at its begin
        }
        xacts[t] = rec
        activeQueue.append((rec.beginSeq, t))
    }

    /// Registers read-only `rec`, begun lazily with snapshot `snapshot` (``SSIManager/beginLazyReadOnly(hint:stripe:)``),
    /// at the place of its snapshot among the commits — where the begin queue would have put it:
    /// - no read-write commit it cannot see is recorded (the common case: none happened since its snapshot): the
    ///   next tick, as ``registerBeginLocked(_:counters:)`` does (the read-write transactions active now are a
    ///   superset of those active at its snapshot that have not ended: its possible unsafe conflicts, or safe at
    ///   once if there are none);
    /// - otherwise the odd number just below the oldest such commit (retained or summarized: none was cleaned up,
    ///   see `cleanupLocked(lazyBound:)`), so that "T committed before the snapshot ⇔ `T.commitSeq < beginSeq`"
    ///   still holds. Its possible unsafe conflicts are not known any more (some ended before now): its snapshot
    ///   is taken as unsafe, so it stays tracked to its end — the conservative side.
    mutating func registerLateLocked(_ rec: SerializableXact, snapshot: UInt64, counters: SSICounters) {
        var firstUnseen: UInt64?
        var i = committedQueue.count - 1
        while i >= committedHead {
            // Newest first; read-write commits are in commit-timestamp order (in memory, both are assigned under
            // the commit lock), so the walk stops at the first one the snapshot sees.
            if let r = xacts[committedQueue[i]], !r.readOnly, let c = r.commitSeq {
                if r.commitTS <= snapshot { break }
                firstUnseen = c
            }
            i -= 1
        }
        if !summary.isEmpty {
            for (_, w) in summary.writers where w.commitTS > snapshot {
                if firstUnseen.map({ w.commitSeq < $0 }) ?? true { firstUnseen = w.commitSeq }
            }
        }
        guard let firstUnseen else {
            registerBeginLocked(rec, counters: counters)
            return
        }
        rec.beginSeq = firstUnseen - 1
        rec.safety = .unsafe
        xacts[rec.txid] = rec
        // `activeQueue` is in begin order: an older begin goes in its place (at least at the head).
        var at = activeQueue.count
        while at > activeHead && activeQueue[at - 1].begin > rec.beginSeq { at -= 1 }
        activeQueue.insert((rec.beginSeq, rec.txid), at: at)
    }

    /// `t` is no longer an active read-write transaction (committed, aborted or rolled back).
    mutating func leaveActiveReadWriteLocked(_ t: UInt64) {
        if activeReadWrite.remove(t) != nil {
            fastPath.activeReadWrite.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    // MARK: Dangerous structures

    /// Records reader →rw writer and checks whether it completes a dangerous structure (PostgreSQL's
    /// `FlagRWConflict` + `OnConflict_CheckForSerializationFailure`). Returns the error `me` must abort with, or
    /// nil (possibly after dooming another transaction: the pivot, which has not committed).
    mutating func flagConflictLocked(
        reader r: UInt64, writer w: UInt64, edge: ConflictEdge, me: UInt64,
        phase: ConflictPhase, counters: SSICounters
    ) -> IsoKVError? {
        guard r != w, let R = xacts[r], let W = xacts[w], R.outConflicts[w] == nil else { return nil }
        R.outConflicts[w] = edge
        W.inConflicts[r] = edge
        var cycle: String?
        var pivot = w
        // 1. The writer is a pivot with an out-conflict to T2 that committed first:  R -rw-> W -rw-> T2.
        //    No anomaly if R or W committed before T2, or R is read-only and took its snapshot before T2 committed.
        //    T2 may be R itself (a two-transaction cycle R -rw-> W -rw-> R): hence `<=`, as PostgreSQL.
        func committedFirst(_ c2: UInt64) -> Bool {
            (R.commitSeq.map { c2 <= $0 } ?? true) && (W.commitSeq.map { c2 <= $0 } ?? true)
                && (!R.readOnly || c2 < R.beginSeq)
        }
        if let s = W.summaryOutCommit, committedFirst(s) {
            cycle = "tx\(r) -rw(\(edge))-> tx\(w) -rw(\(W.summaryOutWhat ?? "?"))-> a transaction that committed first"
        } else {
            for (t2, e2) in W.outConflicts {
                guard let T2 = xacts[t2], let c2 = T2.commitSeq, committedFirst(c2) else { continue }
                cycle = "tx\(r) -rw(\(edge))-> tx\(w) -rw(\(e2))-> tx\(t2), which committed first"
                break
            }
        }
        // 2. The reader is a pivot and the writer committed:  T0 -rw-> R -rw-> W. No anomaly if T0 committed
        //    before W, or T0 is read-only and took its snapshot after W committed. T0 may be W itself: `>=`.
        //    A summarized T0 (only `R.summaryInCommit` is left of it) needs no check here: summaries are taken
        //    oldest commit first, so a committed W still in `xacts` committed after every summarized T0.
        if cycle == nil, let cw = W.commitSeq, !R.readOnly {
            for (t0, e0) in R.inConflicts {
                guard let T0 = xacts[t0], !T0.isDoomed else { continue }
                if (T0.commitSeq.map { $0 >= cw } ?? true) && (!T0.readOnly || cw < T0.beginSeq) {
                    cycle = "tx\(t0) -rw(\(e0))-> tx\(r) -rw(\(edge))-> tx\(w), which committed first"
                    pivot = r
                    break
                }
            }
        }
        guard let cycle else { return nil }
        let other = me == w ? r : w
        let error = IsoKVError(
            .serializationFailure,
            "could not serialize access due to read/write dependencies among transactions "
                + "(dangerous structure found on \(phase.rawValue), pivot tx\(pivot): \(cycle)); retry the transaction",
            key: edge.key, otherTransaction: TransactionID(rawValue: other))
        // The victim: ourselves if we are the writer (then we are the pivot of case 1) or the writer has committed
        // (then we are the reader and the pivot of case 2); otherwise the writer, the pivot, which has not committed.
        // A prepared writer (durable commit in flight) cannot be doomed: the reader, `me`, goes instead.
        if me == w || W.isCommitted || W.prepared {
            switch phase {
            case .read: counters.rwOnRead.add(1, ordering: .relaxed)
            case .write: counters.rwOnWrite.add(1, ordering: .relaxed)
            }
            return error
        }
        var doomed = error
        doomed.otherTransaction = TransactionID(rawValue: r)
        doomLocked(w, doomed)
        return nil
    }

    /// Before `me` commits, as the possible T_out of a structure T_in -rw-> pivot -rw-> me: doom every uncommitted
    /// pivot whose T_in is `me` or an uncommitted, read-write, not doomed transaction (PostgreSQL's
    /// `PreCommit_CheckForSerializationFailure`). Aborting the pivot rather than `me` means a retry of the pivot
    /// starts after `me` committed and sees its writes, so it cannot fail the same way. Returns `me`'s own doom.
    /// `rec` is the registered record of `me` (the caller has it: no lookup, no reference count).
    mutating func preCommitLocked(_ rec: SerializableXact, counters: SSICounters) -> IsoKVError? {
        let me = rec.txid
        if let d = rec.doom {
            counters.doomedPivots.add(1, ordering: .relaxed)
            return d
        }
        for (p, ep) in rec.inConflicts {
            guard let P = xacts[p], !P.isCommitted, !P.isDoomed else { continue }
            for (tin, ein) in P.inConflicts {
                let dangerous =
                    tin == me || (xacts[tin].map { !$0.isCommitted && !$0.readOnly && !$0.isDoomed } ?? false)
                guard dangerous else { continue }
                if P.prepared {
                    // The pivot is committing durably and cannot be aborted: `me` (T_out, not yet committed) must.
                    guard !rec.prepared else { continue }
                    return IsoKVError(
                        .serializationFailure,
                        "could not serialize access due to read/write dependencies among transactions (tx\(tin) "
                            + "-rw(\(ein))-> tx\(p) -rw(\(ep))-> tx\(me), and the pivot tx\(p) is already committing); "
                            + "retry the transaction",
                        key: ep.key, otherTransaction: TransactionID(rawValue: p))
                }
                doomLocked(
                    p,
                    IsoKVError(
                        .serializationFailure,
                        "could not serialize access due to read/write dependencies among transactions (canceled as the "
                            + "pivot tx\(p) of tx\(tin) -rw(\(ein))-> tx\(p) -rw(\(ep))-> tx\(me), which committed first); "
                            + "retry the transaction",
                        key: ep.key, otherTransaction: TransactionID(rawValue: me)))
                break
            }
        }
        return nil
    }

    mutating func doomLocked(_ t: UInt64, _ error: IsoKVError) {
        // Callers never choose a prepared transaction; the guard keeps a mistake from dooming a durable commit.
        guard let rec = xacts[t], rec.doom == nil, !rec.prepared else { return }
        rec.doom = error
        rec.doomed.store(true, ordering: .releasing)
    }

    // MARK: Read-only safety

    /// After read-write `W` committed: each read-only transaction that listed it learns whether `w` made its
    /// snapshot unsafe (an rw-conflict out of `w` to a transaction committed before the snapshot).
    mutating func resolveReadOnlyAfterCommitLocked(_ W: SerializableXact) {
        guard !W.readOnly, !W.possibleUnsafe.isEmpty else { return }
        let w = W.txid
        var earliest = W.summaryOutCommit
        for (t, _) in W.outConflicts {
            if let c = xacts[t]?.commitSeq, earliest == nil || c < earliest! { earliest = c }
        }
        for ro in W.possibleUnsafe {
            guard let RO = xacts[ro], RO.safety == .pending else { continue }
            if let e = earliest, e < RO.beginSeq {
                markUnsafeLocked(ro)
            } else {
                RO.possibleUnsafe.remove(w)
                if RO.possibleUnsafe.isEmpty { markSafeLocked(ro) }
            }
        }
        W.possibleUnsafe = []
    }

    mutating func markUnsafeLocked(_ ro: UInt64) {
        guard let RO = xacts[ro], RO.readOnly else { return }
        for rw in RO.possibleUnsafe { xacts[rw]?.possibleUnsafe.remove(ro) }
        RO.possibleUnsafe = []
        RO.safety = .unsafe
        deferred.removeValue(forKey: ro)?.resume(returning: .unsafe)
    }

    /// The read-only transaction can no longer take part in an anomaly: stop tracking it.
    mutating func markSafeLocked(_ ro: UInt64) {
        guard let RO = xacts[ro], RO.readOnly else { return }
        RO.safe.store(true, ordering: .releasing)
        safeLater += 1
        deferred.removeValue(forKey: ro)?.resume(returning: .safe)
        if !RO.pointKeys.isEmpty { pendingRelease.append((ro, RO.pointKeys)) }
        removeLocked(ro, summarize: false)
    }

    /// Marks read-only `t` committed now (see `SSIManager.finishReadOnly`). If its record is gone (found safe since),
    /// its point locks are released at the next cleanup.
    /// The commit mark of a read-write transaction (in memory, or durable once its record is durable), made in the
    /// same critical section as the publication of its writes: the next tick of the SSI clock, its point SIREAD
    /// keys kept for cleanup, out of `activeReadWrite`, queued for cleanup, and the read-only transactions that
    /// waited on it resolved.
    mutating func markCommittedLocked(_ rec: SerializableXact, pointKeys: [Bytes], commitTS: UInt64) {
        let t = rec.txid
        clock += 2
        rec.commitSeq = clock
        rec.commitTS = commitTS
        rec.pointKeys = pointKeys
        leaveActiveReadWriteLocked(t)
        committedQueue.append(t)
        resolveReadOnlyAfterCommitLocked(rec)
    }

    /// Replaces every range lock of `owner` by one whole-keyspace lock with id `id` (escalation). The new lock is
    /// added before the others are removed: `fastPath.rangeLocks` must never read 0 while this owner's ranges
    /// matter (the lock-free write check skips the SSI lock when it reads 0).
    mutating func escalateLocked(_ owner: UInt64, id: UInt64) {
        ranges.append(RangeLock(owner: owner, id: id, range: .all))
        ranges.removeAll { $0.owner == owner && $0.id != id }
    }

    mutating func commitReadOnlyLocked(_ t: UInt64, pointKeys: [Bytes]) {
        guard let rec = xacts[t] else {
            if !pointKeys.isEmpty { pendingRelease.append((t, pointKeys)) }
            return
        }
        clock += 2
        rec.commitSeq = clock
        rec.pointKeys = pointKeys
        committedQueue.append(t)
    }

    // MARK: Summaries (memory bound on retained committed transactions)

    /// Folds the oldest retained committed transaction `C` into `summary` (PostgreSQL's `SummarizeOldestCommittedSxact`):
    /// - its SIREAD locks become summary locks carrying `C.commitSeq` (the newest per key): a later writer `W`
    ///   concurrent with it (`commitSeq > W.beginSeq`) still gets the edge `C ──rw──▶ W`, as a summary conflict-in;
    /// - each transaction `C` had an rw-conflict out to keeps it as `summaryInCommit`, each reader with a conflict
    ///   into `C` keeps it as `summaryOutCommit` (`removeLocked(summarize:)`);
    /// - if `C` wrote, it is remembered as a summarized writer (commit, earliest conflict-out commit), so that a
    ///   reader that later finds one of its versions newer than its snapshot still gets `R ──rw──▶ C`.
    /// Read-onlyness and exact partners are forgotten: every check then takes the conservative side.
    mutating func summarizeOldestLocked() {
        let t = committedQueue[committedHead]
        committedHead += 1
        guard let rec = xacts[t], let c = rec.commitSeq else { return }
        summarizations += 1
        // Set before the point locks leave the table (after the lock) and before the range count drops, so that
        // the lock-free write check cannot miss the summary (`SSIManager.checkWrite`).
        fastPath.summarized.store(true, ordering: .sequentiallyConsistent)
        summary.newestCommit = max(summary.newestCommit, c)
        let reader = SummaryReader(commitSeq: c, txid: t)
        for key in rec.pointKeys { summary.points[key] = max(summary.points[key] ?? reader, reader) }
        for r in ranges where r.owner == t { summary.ranges.append((r.range, reader)) }
        if summary.points.count + summary.ranges.count > limits.maxSummaryLocks {
            summary.all = reader  // the newest summarized so far (commit order)
            summary.points = [:]
            summary.ranges = []
        }
        if !rec.pointKeys.isEmpty { pendingRelease.append((t, rec.pointKeys)) }
        for (w, _) in rec.outConflicts {
            if let W = xacts[w] { W.summaryInCommit = max(W.summaryInCommit ?? 0, c) }
        }
        if !rec.readOnly {
            var earliest = rec.summaryOutCommit
            for (t2, _) in rec.outConflicts {
                if let c2 = xacts[t2]?.commitSeq, earliest.map({ c2 < $0 }) ?? true { earliest = c2 }
            }
            summary.writers[t] = SummarizedWriter(commitSeq: c, commitTS: rec.commitTS, earliestOutCommit: earliest)
            summary.newestWriterTS = max(summary.newestWriterTS, rec.commitTS)
        }
        removeLocked(t, summarize: true)
    }

    /// A summarized reader (newest commit `c`, concurrent with `w`) read the key `w` just wrote: the edge
    /// `summarized ──rw──▶ w`. `w` (the caller, active) is a pivot if it has a conflict out to a transaction that
    /// committed no later than `c`; then `w` fails. Returns that error.
    mutating func flagSummarizedReaderLocked(
        writer w: UInt64, reader: SummaryReader, edge: ConflictEdge,
        counters: SSICounters
    ) -> IsoKVError? {
        guard let W = xacts[w] else { return nil }
        let c = reader.commitSeq
        W.summaryInCommit = max(W.summaryInCommit ?? 0, c)
        var cycle: String?
        if let s = W.summaryOutCommit, s <= c {
            cycle = "\(W.summaryOutWhat ?? "a transaction that committed first")"
        } else {
            for (t2, e2) in W.outConflicts {
                if let c2 = xacts[t2]?.commitSeq, c2 <= c { cycle = "\(e2), written by tx\(t2)"; break }
            }
        }
        guard let cycle else { return nil }
        counters.rwOnWrite.add(1, ordering: .relaxed)
        return IsoKVError(
            .serializationFailure,
            "could not serialize access due to read/write dependencies among transactions (dangerous structure "
                + "found on write, pivot tx\(w): tx\(reader.txid) (committed, summarized) -rw(\(edge))-> tx\(w) "
                + "-rw(\(cycle))-> a transaction that committed first); retry the transaction",
            key: edge.key, otherTransaction: TransactionID(rawValue: reader.txid))
    }

    /// Reader `r` (the caller) found a version newer than its snapshot written by the summarized, committed `w`:
    /// the edge `r ──rw──▶ w`, kept on `r` as a summary conflict-out. Fails `r` if that completes a structure:
    /// `w` was a pivot with a conflict out to a transaction that committed first, or `r` is a pivot with a
    /// conflict in from a transaction that did not commit before `w`.
    mutating func flagSummarizedWriterLocked(
        reader r: UInt64, writer w: UInt64, _ sw: SummarizedWriter,
        edge: ConflictEdge, counters: SSICounters
    ) -> IsoKVError? {
        guard let R = xacts[r] else { return nil }
        let cw = sw.commitSeq
        if R.summaryOutCommit.map({ cw < $0 }) ?? true {
            R.summaryOutCommit = cw
            R.summaryOutWhat = "\(edge), written by tx\(w)"
        }
        var cycle: String?
        if let e = sw.earliestOutCommit, e <= cw, R.commitSeq.map({ e <= $0 }) ?? true, !R.readOnly || e < R.beginSeq {
            cycle = "tx\(r) -rw(\(edge))-> tx\(w) -rw-> a transaction that committed first"
        } else if !R.readOnly {
            if let sin = R.summaryInCommit, sin >= cw {
                cycle = "a summarized transaction -rw-> tx\(r) -rw(\(edge))-> tx\(w), which committed first"
            } else {
                for (t0, e0) in R.inConflicts {
                    guard let T0 = xacts[t0], !T0.isDoomed else { continue }
                    if (T0.commitSeq.map { $0 >= cw } ?? true) && (!T0.readOnly || cw < T0.beginSeq) {
                        cycle = "tx\(t0) -rw(\(e0))-> tx\(r) -rw(\(edge))-> tx\(w), which committed first"
                        break
                    }
                }
            }
        }
        guard let cycle else { return nil }
        counters.rwOnRead.add(1, ordering: .relaxed)
        return IsoKVError(
            .serializationFailure,
            "could not serialize access due to read/write dependencies among transactions (dangerous structure "
                + "found on read: \(cycle)); retry the transaction",
            key: edge.key, otherTransaction: TransactionID(rawValue: w))
    }

    // MARK: Removal and cleanup

    /// Removes `t`'s record, its edges and range locks. With `summarize` (a committed transaction cleaned up), each
    /// reader with an edge to it keeps the fact as `summaryOutCommit`.
    mutating func removeLocked(_ t: UInt64, summarize: Bool) {
        guard let rec = xacts.removeValue(forKey: t) else { return }
        // A record that owns tables or keys is freed after the lock; one that owns nothing is only an object, and
        // handing it out would cost more (an array to grow) than freeing it here.
        defer { if rec.ownsStorage { garbage.append(rec) } }
        for (r, e) in rec.inConflicts {
            guard let R = xacts[r] else { continue }
            R.outConflicts[t] = nil
            if summarize, let c = rec.commitSeq, R.summaryOutCommit.map({ c < $0 }) ?? true {
                R.summaryOutCommit = c
                R.summaryOutWhat = "\(e), written by tx\(t)"
            }
        }
        for (w, _) in rec.outConflicts { xacts[w]?.inConflicts[t] = nil }
        if rec.readOnly || rec.isCommitted {
            for rw in rec.possibleUnsafe { xacts[rw]?.possibleUnsafe.remove(t) }
        } else {
            // An aborted read-write transaction can no longer make anybody's snapshot unsafe.
            for ro in rec.possibleUnsafe {
                guard let RO = xacts[ro], RO.readOnly else { continue }
                RO.possibleUnsafe.remove(t)
                if RO.possibleUnsafe.isEmpty && RO.safety == .pending { markSafeLocked(ro) }
            }
        }
        leaveActiveReadWriteLocked(t)
        if !ranges.isEmpty { ranges.removeAll { $0.owner == t } }
    }

    /// Removes the committed transactions that no active serializable transaction overlaps (committed before the
    /// oldest active one began); returns the point locks to remove after the SSI lock is released.
    ///
    /// `lazyBound` (``SSIManager/lazyBound()``, called only when a record is about to go): a bound at or below the
    /// snapshot of every read-only transaction not registered yet. A record committed after it stays, as it would
    /// if those transactions had been registered at their snapshots (SSI/DESIGN.md, "Read-only transactions
    /// registered late").
    mutating func cleanupLocked(lazyBound: () -> UInt64) -> SSICleanup {
        var bound: UInt64?
        while activeHead < activeQueue.count {
            let (b, t) = activeQueue[activeHead]
            if let r = xacts[t], !r.isCommitted, r.beginSeq == b { break }
            activeHead += 1
        }
        if activeHead > 256 && activeHead * 2 > activeQueue.count {
            activeQueue.removeFirst(activeHead)
            activeHead = 0
        }
        let oldestActive: UInt64? = activeHead < activeQueue.count ? activeQueue[activeHead].begin : nil
        defer { garbage = [] }
        while committedHead < committedQueue.count {
            let t = committedQueue[committedHead]
            guard let r = xacts[t], let c = r.commitSeq else { committedHead += 1; continue }
            if let oldestActive, c > oldestActive { break }
            if !r.readOnly {
                if bound == nil { bound = lazyBound() }
                if r.commitTS > bound! { break }
            }
            committedHead += 1
            if !r.pointKeys.isEmpty { pendingRelease.append((t, r.pointKeys)) }
            removeLocked(t, summarize: true)
        }
        // Memory bound: what an old active transaction still holds back beyond the limit is summarized.
        while committedQueue.count - committedHead > limits.maxRetainedCommitted {
            summarizeOldestLocked()
        }
        if !summary.isEmpty, oldestActive.map({ summary.newestCommit < $0 }) ?? true,
            summary.newestWriterTS <= (bound ?? lazyBound())
        {
            // No active transaction overlaps any summarized one any more.
            summary = SSISummary()
            fastPath.summarized.store(false, ordering: .sequentiallyConsistent)
        }
        let released = pendingRelease
        pendingRelease = []
        if committedHead > 256 && committedHead * 2 > committedQueue.count {
            committedQueue.removeFirst(committedHead)
            committedHead = 0
        }
        return SSICleanup(released: released, garbage: garbage)
    }
}

/// What a cleanup leaves to do once the SSI lock is released: point locks to remove, records to free.
struct SSICleanup {
    var released: [SSIManager.Released] = []
    var garbage: [SerializableXact] = []
}

/// Summarized committed transactions (PostgreSQL's `OldCommittedSxact` and `pg_serial`), behind the SSI lock. Kept
/// until no active transaction overlaps the newest of them (`newestCommit` < the oldest active `beginSeq`).
struct SSISummary {
    /// Summary point SIREAD locks: key → the newest summarized reader of it.
    var points: [Bytes: SummaryReader] = [:]
    /// Summary range SIREAD locks, each with its summarized owner.
    var ranges: [(range: PredicateRange, reader: SummaryReader)] = []
    /// Set when points and ranges outgrew `maxSummaryLocks`: every key counts as read by this summarized
    /// transaction (the newest summarized at the time; later summaries keep adding points and ranges).
    var all: SummaryReader?
    /// Summarized read-write transactions, by txid.
    var writers: [UInt64: SummarizedWriter] = [:]
    /// The newest `commitSeq` summarized.
    var newestCommit: UInt64 = 0
    /// The newest commit timestamp (`SerializableXact.commitTS`) among the summarized writers: while a lazy
    /// read-only transaction's snapshot is older, the summary stays (its registration may need the writers).
    var newestWriterTS: UInt64 = 0

    var isEmpty: Bool { newestCommit == 0 }

    /// The newest summarized reader whose SIREAD locks cover `key`, or nil.
    func newestReader(covering key: Bytes) -> SummaryReader? {
        guard !isEmpty else { return nil }
        var newest = all
        if let p = points[key] { newest = max(newest ?? p, p) }
        for (range, r) in ranges where range.contains(key) { newest = max(newest ?? r, r) }
        return newest
    }
}

/// A summarized reader as a summary lock remembers it: its commit (what the checks use) and its txid (for the
/// error message). Ordered by commit.
struct SummaryReader: Comparable {
    let commitSeq: UInt64
    let txid: UInt64
    static func < (a: SummaryReader, b: SummaryReader) -> Bool { a.commitSeq < b.commitSeq }
}

/// What is kept of a summarized read-write transaction: enough to judge an edge from a reader to it.
struct SummarizedWriter {
    let commitSeq: UInt64
    /// Its commit timestamp (`SerializableXact.commitTS`): for the registration of a lazy read-only transaction.
    let commitTS: UInt64
    /// The earliest `commitSeq` among the transactions it had an rw-conflict out to that had committed when it
    /// was summarized (nil: none). Later ones cannot have committed before it.
    let earliestOutCommit: UInt64?
}
