import IsoKVCore
import IsoKVStorage

// The consistency checker, as bbolt's `tx.Check()`: DESIGN.md, "Consistency checker" (each invariant, where it is
// declared, when the check is exact, its cost, what it does not check).
//
// Entry points: `Database.check(_:)` (in memory, any time), `Database.check(path:)` (a data directory, recovered
// into memory without its lock: `isokv check`), strict mode (`Configuration.checkAfterEveryCommit`, the one hook at
// the top of `commitReturningVersion`, `Transaction.commitThenCheck`). Test hooks that break one invariant each:
// `Database+CheckTesting.swift`.
//
// Locks: each is taken alone, in turn, for a short copy — a batch of the scan index, one chain, the wait-for graph,
// the GC backlog, the commit lock, one snapshot-registry stripe, the SSI lock (then the read-only commit queue, a
// leaf, as the lock order allows), one point-lock stripe. Apart from that SSI lock → queue pair, no two are held at
// once, and `check` never suspends, so no lock is held across an await.

extension Database {
    /// Verifies the engine's in-memory invariants — those written beside the fields of `ChainState`, `Oracle`,
    /// `WaitGraph`, `GarbageCollector`, `SSIState` and `SerializableXact` — and returns what is broken (nothing, when
    /// the database is consistent).
    ///
    /// ```swift
    /// let report = db.check()
    /// precondition(report.isConsistent, "\(report)")
    /// ```
    ///
    /// `.quiescent` (the default) checks everything and is exact when no operation is running (transactions may
    /// be open, or suspended waiting for a row lock or a safe snapshot; no checkpoint or backup may be running).
    /// `.concurrent` checks only the invariants that hold at every instant, and is exact while other transactions
    /// run (see ``CheckFinding/Kind/requiresQuiescence``). The check changes nothing.
    ///
    /// Synchronous, on the calling thread: it copies every chain (one chain lock at a time), the scan index (its
    /// published version, read without a lock), the wait-for graph, the GC backlog, the snapshot registry and the SSI
    /// state (each under its own lock, once), then compares. Cost O(keys + versions + locks + SSI records and
    /// SIREAD locks), time and memory; it holds no lock for longer than one copy.
    public func check(_ mode: CheckMode = .quiescent) -> CheckReport {
        var checker = ConsistencyChecker(db: self, mode: mode)
        checker.run()
        return checker.report
    }

    /// Recovers the store in directory `path` into memory — without taking its lock or changing a file, as
    /// ``inspect(path:)`` does — and runs ``check(_:)`` on the result: the engine-level half of `isokv check`.
    /// A log whose files are all valid can still hold what the engine cannot serve (say, a checkpoint entry with a
    /// version above the checkpoint's commit number); this finds it. Throws the `IsoKVError` an open would throw
    /// (`XX001`, `0A000`, `58030`). Blocking (file I/O): call it from a thread, not from a cooperative task.
    public static func check(path: String) throws -> (summary: DirectorySummary, report: CheckReport) {
        let recovered = try mappingStorageErrors { try WriteAheadLog.check(directory: path) }
        let db = Database(configuration: Configuration())
        db.load(recovered)
        let live = replay(recovered).values.reduce(0) { $0 + ($1.value == nil ? 0 : 1) }
        return (DirectorySummary(recovered, liveKeys: live), db.check())
    }
}

extension Transaction {
    /// Strict mode's commit (`Configuration.checkAfterEveryCommit`): the ordinary commit, then
    /// `check(.concurrent)` (exact while other transactions run). Findings make this commit throw `XX000`; the
    /// commit has taken effect by then, and the message says so.
    nonisolated(nonsending) func commitThenCheck() async throws -> UInt64? {
        inStrictCommit = true
        defer { inStrictCommit = false }
        let version = try await commitReturningVersion()
        let report = db.check(.concurrent)
        if !report.isConsistent {
            throw IsoKVError(
                .internalError,
                "strict mode: the commit of tx\(assignedID) took effect"
                    + (version.map { " as version \($0)" } ?? "")
                    + ", and then the consistency check found \(report)")
        }
        return version
    }
}

/// One run of ``Database/check(_:)``: copies each structure under its lock, then compares the copies.
struct ConsistencyChecker {
    let db: Database
    let mode: Database.CheckMode
    var report: CheckReport

    init(db: Database, mode: Database.CheckMode) {
        self.db = db
        self.mode = mode
        self.report = CheckReport(mode: mode)
    }

    /// A chain's state and its committed versions (oldest first), copied in one critical section of its lock,
    /// with `published` read inside it. (The copy of the state must not read the version list: outside the lock
    /// and outside an epoch the list may be cut and freed.)
    struct ChainView {
        let chain: KeyChain
        let state: ChainState
        let versions: [CommittedVersion]
        /// `ChainState.retired` as it was in that critical section (the copy's own `retired` reads the live flag).
        let retired: Bool
        let published: UInt64
        var key: Bytes { chain.key }
        /// `ChainState.needsNoCollection` of the copy.
        var needsNoCollection: Bool {
            retired || versions.isEmpty || (versions.count == 1 && versions[0].value != nil)
        }
    }

    private var quiescent: Bool { mode == .quiescent }

    private mutating func add(
        _ kind: CheckFinding.Kind, key: Bytes? = nil, transaction: UInt64? = nil,
        _ message: @autoclosure () -> String
    ) {
        if kind.requiresQuiescence && !quiescent { return }
        report.findings.append(CheckFinding(kind, key: key, transaction: transaction, message()))
    }

    mutating func run() {
        // 1. Transactions that have not ended. Read first: a transaction that begins later holds nothing yet that
        //    the copies below could show (in a quiescent database nothing begins anyway).
        let live = db.live.activeIDs()
        report.openTransactions = db.live.open.value

        // 2. The scan index: its published version, one consistent version walked without a lock.
        var indexed: [Bytes: KeyChain] = [:]
        db.index.read { idx in
            idx.forEach(in: .all, after: nil, reverse: false) { entry in
                indexed[entry.key] = entry.value
                return true
            }
        }

        // 3. The directory (not a snapshot; exact when quiescent).
        var directory: [Bytes: KeyChain] = [:]
        db.directory.forEach { key, chain in
            directory[key] = chain
            return true
        }

        // 4. The wait-for graph, under its lock (chains it names are viewed too, even if unreachable otherwise).
        let waitingOn = db.lockManager.graph.withLock { $0.waitingOn }

        // 5. Every chain reachable from the directory, the index or the graph, one lock at a time.
        var views: [ObjectIdentifier: ChainView] = [:]
        func view(_ chain: KeyChain) {
            let id = ObjectIdentifier(chain)
            guard views[id] == nil else { return }
            let (state, versions, retired, published) = chain.state.withLock {
                ($0.detachedCopy(), $0.versions, $0.retired, db.oracle.latest())
            }
            views[id] = ChainView(
                chain: chain, state: state, versions: versions, retired: retired, published: published)
        }
        for chain in directory.values { view(chain) }
        for chain in indexed.values { view(chain) }
        for chain in waitingOn.values { view(chain) }

        // 6. The commit counter and `published`, after the chains: every version a chain showed was installed in
        //    a commit-lock section that ended before this one began, so its number is ≤ `last` (exact at any time).
        let (last, published) = db.oracle.commitLock.withLock { last in
            (last, db.oracle.published.load(ordering: .acquiring))
        }
        let inMemory = db.durable == nil
        if inMemory ? published != last : published > last {
            add(
                .oracleClock,
                "published \(published), last assigned commit \(last)"
                    + (inMemory
                        ? " (in memory they are equal outside the commit lock)" : " (durable: published ≤ last)"))
        }

        // 7. The GC backlog.
        let backlog = db.gc.backlog.withLock { Set($0.keys) }

        for v in views.values.sorted(by: { $0.key < $1.key }) {
            checkChain(v, last: last)
            if quiescent { checkChainAgainstTransactions(v, live: live, waitingOn: waitingOn, backlog: backlog) }
        }
        if quiescent {
            checkDirectoryAgainstIndex(directory: directory, indexed: indexed, views: views)
            for (txid, chain) in waitingOn
            where !(views[ObjectIdentifier(chain)]?.state.waiters.contains { $0.txid == txid } ?? false) {
                add(
                    .waitGraphMismatch, key: chain.key, transaction: txid,
                    "the wait-for graph says tx\(txid) waits on this key, but it has no queued request here")
            }
        }

        // 8. The snapshot registry, stripe by stripe; `published` read after each stripe (a snapshot is a value of
        //    `published` read under its stripe's lock, and `published` only grows).
        var registered = 0
        for (i, stripe) in db.oracle.snapshots.enumerated() {
            let (counts, oldest) = stripe.withLock { ($0.registered, $0.oldest) }
            let now = db.oracle.latest()
            registered += counts.values.reduce(0, +)
            if oldest != counts.keys.min() {
                add(
                    .snapshotRegistry,
                    "stripe \(i): oldest \(oldest.map(String.init) ?? "nil"), but the smallest "
                        + "registered snapshot is \(counts.keys.min().map(String.init) ?? "nil")")
            }
            for (s, n) in counts.sorted(by: { $0.key < $1.key }) {
                if s > now { add(.snapshotRegistry, "stripe \(i): snapshot \(s) registered, above published \(now)") }
                if n <= 0 { add(.snapshotRegistry, "stripe \(i): snapshot \(s) with \(n) readers") }
            }
        }
        // The lock-free slots (a `.snapshot` transaction's registration): each holds a lower bound of a live
        // snapshot, read before `published`.
        for s in db.oracle.slots.occupied() {
            registered += 1
            let now = db.oracle.latest()
            if s > now { add(.snapshotRegistry, "snapshot slot: \(s) registered, above published \(now)") }
        }
        // Between operations each open transaction holds at most one registered snapshot (its own; a read-committed
        // scan's statement snapshot and a checkpoint's or backup's live only while they run).
        let open = report.openTransactions
        if registered > open {
            add(
                .snapshotWithoutTransaction,
                "\(registered) snapshots registered, but only \(open) transactions are open")
        }

        // 9. SSI.
        checkSerializable(live: live)

        report.chains = views.count
        report.findings.sort { a, b in
            let ka = CheckFinding.Kind.allCases.firstIndex(of: a.kind)!,
                kb = CheckFinding.Kind.allCases.firstIndex(of: b.kind)!
            if ka != kb { return ka < kb }
            if a.key != b.key { return (a.key ?? .empty) < (b.key ?? .empty) }
            return (a.transaction?.rawValue ?? 0) < (b.transaction?.rawValue ?? 0)
        }
    }

    // MARK: One chain (at every instant)

    /// The writer of a version, if known (recovered versions have creator 0: the writer is not logged).
    private func writer(_ creator: UInt64) -> UInt64? { creator == 0 ? nil : creator }

    private mutating func checkChain(_ v: ChainView, last: UInt64) {
        let s = v.state
        report.versions += v.versions.count
        report.locks += (s.exclusive == nil ? 0 : 1) + s.shared.count + s.waiters.count
        for i in v.versions.indices.dropFirst() where v.versions[i].commitTS <= v.versions[i - 1].commitTS {
            add(
                .versionOrder, key: v.key, transaction: writer(v.versions[i].creator),
                "version \(i) has commit \(v.versions[i].commitTS), not after version \(i - 1)'s \(v.versions[i - 1].commitTS) "
                    + "(versions must be oldest first, strictly increasing)")
            break
        }
        if let newest = v.versions.max(by: { $0.commitTS < $1.commitTS }), newest.commitTS > last {
            add(
                .versionAfterLastCommit, key: v.key, transaction: writer(newest.creator),
                "a version with commit \(newest.commitTS), but the last commit number assigned is \(last)")
        }
        // Installed but not yet published (durable commit waiting for its fsync): its writer must still hold the
        // row's exclusive lock, which it releases only after publication.
        for version in v.versions
        where version.commitTS > v.published && version.commitTS <= last
            && s.exclusive != version.creator
        {
            add(
                .unpublishedVersionUnlocked, key: v.key, transaction: writer(version.creator),
                "version \(version.commitTS) is above published \(v.published), but its writer tx\(version.creator) "
                    + "does not hold the row's exclusive lock (\(s.exclusive.map { "tx\($0) does" } ?? "nobody does"))")
            break
        }
        if let p = s.pending, p.owner != s.exclusive {
            add(
                .pendingWriteWithoutLock, key: v.key, transaction: p.owner,
                "pending write of tx\(p.owner), but the exclusive lock is held by "
                    + (s.exclusive.map { "tx\($0)" } ?? "nobody"))
        }
        if let x = s.exclusive, !s.shared.isEmpty {
            add(
                .conflictingLockHolders, key: v.key, transaction: x,
                "tx\(x) holds forUpdate while \(s.shared.map { "tx\($0)" }.joined(separator: ", ")) hold forShare")
        } else if Set(s.shared).count != s.shared.count {
            add(.conflictingLockHolders, key: v.key, "a forShare holder is listed twice: \(s.shared)")
        }
        if let first = s.waiters.first, s.conflictingHolder(first.txid, first.mode) == nil {
            add(
                .grantableWaiter, key: v.key, transaction: first.txid,
                "tx\(first.txid) is first in the queue for \(first.mode), which no holder blocks")
        }
        if v.retired
            && !(v.versions.isEmpty && s.pending == nil && s.exclusive == nil && s.shared.isEmpty
                && s.waiters.isEmpty)
        {
            add(
                .retiredChainNotEmpty, key: v.key,
                "retired with \(v.versions.count) versions, \(s.pending == nil ? "no" : "a") pending write, "
                    + "\((s.exclusive == nil ? 0 : 1) + s.shared.count) holders and \(s.waiters.count) waiters")
        }
    }

    // MARK: Across structures (quiescent)

    private mutating func checkChainAgainstTransactions(
        _ v: ChainView, live: Set<UInt64>,
        waitingOn: [UInt64: KeyChain], backlog: Set<ObjectIdentifier>
    ) {
        let s = v.state
        var roles: [UInt64: [String]] = [:]
        if let x = s.exclusive { roles[x, default: []].append("holds forUpdate") }
        for t in s.shared { roles[t, default: []].append("holds forShare") }
        if let p = s.pending { roles[p.owner, default: []].append("owns the pending write") }
        for w in s.waiters { roles[w.txid, default: []].append("waits for \(w.mode)") }
        for (t, what) in roles.sorted(by: { $0.key < $1.key }) where !live.contains(t) {
            add(
                .lockOfEndedTransaction, key: v.key, transaction: t,
                "tx\(t) has ended, but it " + what.joined(separator: ", "))
        }
        for w in s.waiters where waitingOn[w.txid] !== v.chain {
            add(
                .waitGraphMismatch, key: v.key, transaction: w.txid,
                "tx\(w.txid) is queued here, but the wait-for graph "
                    + (waitingOn[w.txid].map { "has it waiting on key \($0.key)" } ?? "does not know it waits"))
        }
        if !v.retired && !v.needsNoCollection && !backlog.contains(ObjectIdentifier(v.chain)) {
            add(
                .versionsNotFiledForGC, key: v.key,
                "\(v.versions.count) versions (newest \(v.versions.last?.value == nil ? "a tombstone" : "live")) "
                    + "and the chain is not in the GC backlog")
        }
    }

    private mutating func checkDirectoryAgainstIndex(
        directory: [Bytes: KeyChain], indexed: [Bytes: KeyChain],
        views: [ObjectIdentifier: ChainView]
    ) {
        func retired(_ c: KeyChain?) -> Bool { c.map { views[ObjectIdentifier($0)]?.retired ?? false } ?? false }
        for key in Set(directory.keys).union(indexed.keys).sorted(by: <) {
            let d = directory[key], i = indexed[key]
            if retired(d) || retired(i) {
                var places: [String] = []
                if retired(d) { places.append("the directory") }
                if retired(i) { places.append("the scan index") }
                add(
                    .retiredChainReachable, key: key, "a retired chain is still in " + places.joined(separator: " and ")
                )
            } else if d != nil, i == nil {
                add(.keyNotIndexed, key: key, "the key has a chain in the directory but is not in the scan index")
            } else if let i, d !== i {
                add(
                    .indexedChainNotInDirectory, key: key,
                    "the scan index holds a chain that is not retired and is not the directory's "
                        + (d == nil
                            ? "(the directory has no chain for the key)" : "(the directory holds another chain)"))
            }
        }
    }

    // MARK: SSI

    private mutating func checkSerializable(live: Set<UInt64>) {
        var findings: [CheckFinding] = []
        var records: Set<UInt64> = []
        var awaitingRelease: Set<UInt64> = []
        let quiescent = self.quiescent
        db.ssi.withUnrecordedState { s, queued, queuedBegins in
            func add(_ kind: CheckFinding.Kind, _ t: UInt64?, key: Bytes? = nil, _ message: @autoclosure () -> String) {
                if kind.requiresQuiescence && !quiescent { return }
                findings.append(CheckFinding(kind, key: key, transaction: t, message()))
            }
            // Loaded inside the SSI lock: every publication that can expose a prepared commit runs inside it.
            let published = db.oracle.published.load(ordering: .sequentiallyConsistent)
            let queuedCommits = Set(queued.map(\.txid))
            awaitingRelease = queuedCommits.union(s.pendingRelease.map(\.txid))
            for (t, r) in s.xacts {
                records.insert(t)
                for (w, edge) in r.outConflicts where s.xacts[w]?.inConflicts[t] == nil {
                    add(
                        .ssiEdgeAsymmetric, t, key: edge.key,
                        "tx\(t) has an rw-conflict out to tx\(w), but "
                            + (s.xacts[w] == nil ? "tx\(w) has no record" : "tx\(w) has no conflict in from tx\(t)"))
                }
                for (rd, edge) in r.inConflicts where s.xacts[rd]?.outConflicts[t] == nil {
                    add(
                        .ssiEdgeAsymmetric, rd, key: edge.key,
                        "tx\(t) has an rw-conflict in from tx\(rd), but "
                            + (s.xacts[rd] == nil ? "tx\(rd) has no record" : "tx\(rd) has no conflict out to tx\(t)"))
                }
                var wrong: [String] = []
                if r.txid != t { wrong.append("its record is tx\(r.txid)'s") }
                if let c = r.commitSeq, c <= r.beginSeq { wrong.append("commitSeq \(c) ≤ beginSeq \(r.beginSeq)") }
                if max(r.beginSeq, r.commitSeq ?? 0) > s.clock {
                    wrong.append("a sequence above the SSI clock \(s.clock)")
                }
                let doomed = r.doomed.load(ordering: .acquiring)
                if doomed != r.isDoomed {
                    wrong.append(doomed ? "doomed without a reason" : "a reason to doom, not doomed")
                }
                if r.isDoomed && r.isCommitted { wrong.append("doomed and committed") }
                if r.prepared && (r.isCommitted || r.readOnly) {
                    wrong.append("prepared and \(r.readOnly ? "read-only" : "committed")")
                }
                if r.prepared != s.prepared.contains(where: { $0 === r }) {
                    wrong.append(
                        r.prepared ? "prepared, missing from the prepared list" : "listed as prepared, not prepared")
                }
                // Every publication marks the prepared commits it makes visible (SSIManager.commitPreparedLocked).
                if r.prepared, case let ts = r.preparedTS.load(ordering: .acquiring), ts != 0, ts <= published {
                    wrong.append("prepared commit \(ts) visible (published \(published)) but not marked committed")
                }
                if r.safe.load(ordering: .acquiring) { wrong.append("marked safe but still tracked") }
                for p in r.possibleUnsafe.sorted() {
                    guard let P = s.xacts[p], P.readOnly != r.readOnly, P.possibleUnsafe.contains(t) else {
                        wrong.append("possibleUnsafe lists tx\(p), which does not list it back")
                        break
                    }
                }
                if !wrong.isEmpty { add(.ssiRecordInconsistent, t, wrong.joined(separator: "; ")) }
                if (!r.isCommitted && !r.readOnly) != s.activeReadWrite.contains(t) {
                    add(
                        .ssiActiveSetMismatch, t,
                        s.activeReadWrite.contains(t)
                            ? "in activeReadWrite, but \(r.isCommitted ? "committed" : "read-only")"
                            : "an active read-write record missing from activeReadWrite")
                }
                if !r.isCommitted && !live.contains(t) && !queuedCommits.contains(t) {
                    add(.ssiRecordOfEndedTransaction, t, "an active SSI record, but tx\(t) has ended")
                }
            }
            for t in s.activeReadWrite.sorted() where s.xacts[t] == nil {
                add(.ssiActiveSetMismatch, t, "in activeReadWrite without a record")
            }
            // Begins not registered yet: each once, live, not also registered.
            var queuedReadWrite = 0
            var seenQueued: Set<UInt64> = []
            for b in queuedBegins.entries {
                records.insert(b.txid)  // a record, not registered yet: its point locks are not orphans
                if !b.readOnly { queuedReadWrite += 1 }
                if s.xacts[b.txid] != nil || !seenQueued.insert(b.txid).inserted {
                    add(.ssiRecordInconsistent, b.txid, "tx\(b.txid) is in the begin queue twice or also registered")
                }
                if !live.contains(b.txid) {
                    add(.ssiRecordOfEndedTransaction, b.txid, "a queued begin of tx\(b.txid), which has ended")
                }
            }
            let mirrors: [(String, Int, Int)] = [
                (
                    "activeReadWrite", queuedBegins.activeReadWriteCount,
                    s.activeReadWrite.count + queuedReadWrite
                ),
                ("rangeLocks", s.fastPath.rangeLocks.load(ordering: .sequentiallyConsistent), s.ranges.count),
                (
                    "summarized", s.fastPath.summarized.load(ordering: .sequentiallyConsistent) ? 1 : 0,
                    s.summary.isEmpty ? 0 : 1
                )
            ]
            for (name, mirror, actual) in mirrors where mirror != actual {
                add(.ssiActiveSetMismatch, nil, "fastPath.\(name) is \(mirror), the state says \(actual)")
            }
            for lock in s.ranges where s.xacts[lock.owner] == nil {
                add(
                    .ssiRangeLockOrphaned, lock.owner,
                    "range SIREAD lock \(lock.id) on \(lock.range) of tx\(lock.owner), "
                        + "which has no record")
            }
            for t in s.deferred.keys.sorted() where !live.contains(t) {
                add(.ssiRecordOfEndedTransaction, t, "a deferrable wait of tx\(t), which has ended")
            }
        }
        report.findings += findings
        report.serializableRecords = records.count
        guard quiescent else { return }
        // Point SIREAD locks: a holder without a record is fine while it lives (found safe, or untracked) or while
        // its release is pending (cleanup queue); otherwise the lock leaked.
        var entries = 0
        for stripe in db.ssi.pointLocks.stripes {
            let table = stripe.withLock { $0 }
            for (key, holders) in table {
                entries += holders.count
                for t in Set(holders) where !records.contains(t) && !live.contains(t) && !awaitingRelease.contains(t) {
                    add(
                        .ssiPointLockOrphaned, key: key, transaction: t,
                        "point SIREAD lock of tx\(t), which has no record, has ended and is not awaiting release")
                }
            }
        }
        // A lazy read-only transaction frees its slot at its registration or at its end: never more slots taken
        // than transactions open.
        let (lazy, open) = (db.ssi.lazySlots.occupied().count, report.openTransactions)
        if lazy > open {
            add(.ssiActiveSetMismatch, "\(lazy) lazy read-only snapshot slots taken, \(open) transactions open")
        }
        // The count writers test instead of the stripes (`PointLockTable.entries`): exact when quiescent.
        let counted = db.ssi.pointLocks.entries.load(ordering: .sequentiallyConsistent)
        if counted != entries {
            add(.ssiActiveSetMismatch, "pointLocks.entries is \(counted), the stripes hold \(entries) locks")
        }
    }
}
