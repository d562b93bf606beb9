import IsoKVCore
extension Transaction {
    /// Commits: makes every write visible atomically, then releases the locks.
    ///
    /// Protocol:
    /// 1. A dead transaction (`40001`/`40P01` earlier) throws `25P02`; an ended one `25P01`.
    /// 2. Read-only work (no pending write) just ends: nothing to publish.
    /// 3. Under the oracle's commit lock: `ts = last + 1`; each pending write becomes the version `ts` of its chain
    ///    (invisible until step 4, because every reader's snapshot is `≤ published < ts`).
    ///    **Durable database**: the record of the writes is enqueued in the WAL here, in `ts` order, and the
    ///    fsync is awaited outside the lock before step 4 (`commitDurably`, DESIGN.md "Durable database").
    /// 4. Publish `ts` (`published.store(ts, .releasing)`): from now on new snapshots see all the writes.
    /// 5. Release the row locks (waking waiters), unregister the snapshot, prune the touched chains.
    nonisolated(nonsending) public func commit() async throws {
        _ = try await commitReturningVersion()
    }

    /// ``commit()`` returning the commit sequence number (the new version of every key written), or nil if nothing
    /// was written.
    @discardableResult
    nonisolated(nonsending) package func commitReturningVersion() async throws -> UInt64? {
        // STRICT MODE (`Configuration.checkAfterEveryCommit`, Database+Check.swift): this commit, then `check()`.
        if db.configuration.checkAfterEveryCommit && !inStrictCommit { return try await commitThenCheck() }
        try checkActive()
        // Durability hook: a database opened with `open(path:)` runs steps 3–4 with the write-ahead log
        // (Database+Durability.swift): assign `ts`, install and enqueue the record under the commit lock, wait for
        // it to be durable outside the lock, then publish; the row locks are released (step 5) only after that.
        // Checks that may refuse the commit (e.g. SSI) belong above this hook, so that they apply to both paths.
        if !writeOrder.isEmpty, let durable = db.durable {
            // SSI on a durable database: the pre-commit check runs now and leaves the transaction `prepared` (it
            // can no longer be a victim); it is marked committed at publication, after the fsync, inside the SSI
            // lock (SSI/DESIGN.md, "Durable databases"). A failure to log ends it as aborted (endTransaction).
            let ssiXact = serializableCommitHandle()
            if let ssiXact, let failure = db.ssi.prepare(ssiXact) { throw abort(failure) }
            let version = try await commitDurably(durable, ssi: ssiXact)
            endTransaction(.committed)
            durable.afterCommit(db)
            return version
        }
        var version: UInt64?
        // SSI (only a tracked `.serializable` transaction): the pre-commit check and the commit mark run under
        // the SSI lock, around step 3-4 when there are writes (see SSI/DESIGN.md).
        let ssiXact = serializableCommitHandle()
        if !writeOrder.isEmpty {
            let chains = writeOrder
            let txid = self.txid
            let oracle = db.oracle
            var failure: IsoKVError?
            version = oracle.commitLock.withLock { last -> UInt64 in
                func publish() -> UInt64 {
                    let ts = last + 1
                    for chain in chains {
                        chain.state.withLock { $0.installLocked(owner: txid, commitTS: ts) }
                    }
                    last = ts
                    oracle.published.store(ts, ordering: .releasing)
                    return ts
                }
                guard let ssiXact else { return publish() }
                var ts: UInt64 = 0
                failure = db.ssi.commit(ssiXact, pointKeys: serializable?.pointKeys ?? []) { ts = publish() }
                return ts
            }
            if let failure { throw abort(failure) }
        } else if let ssiXact, isReadOnly {
            // A tracked read-only transaction: hands its SIREAD locks over without waiting for the SSI lock.
            try checkNotDoomed(ssiXact)
            db.ssi.finishReadOnly(ssiXact, pointKeys: serializable?.pointKeys ?? [])
            serializable = nil
        } else if let ssiXact, let failure = db.ssi.commit(ssiXact, pointKeys: serializable?.pointKeys ?? [], publish: {}) {
            throw abort(failure)
        }
        endTransaction(.committed)
        return version
    }

    /// Rolls back: drops every pending write and releases every lock. Always succeeds, also on a dead or ended
    /// transaction (then it does nothing).
    nonisolated(nonsending) public func rollback() async throws {
        rollbackNow()
    }

    func rollbackNow() {
        switch state {
        case .active: endTransaction(.rolledBack)
        case .failed: state = .rolledBack
        case .committed, .rolledBack: break
        }
    }

    /// Kills the transaction with `error` (a `40001` or `40P01`): undo and unlock at once so that the others can
    /// proceed, then remember the error for `25P02`. Returns `error` for the caller to throw.
    func abort(_ error: IsoKVError) -> IsoKVError {
        if case .active = state {
            db.failureCounts.count(error.code)
            endTransaction(.failed(error))
        }
        return error
    }

    /// Releases everything and moves to `final`: pending writes (not yet installed) are dropped with the locks.
    func endTransaction(_ final: State) {
        state = final
        if serializable != nil { serializableEnd(committed: { if case .committed = final { true } else { false } }()) }
        var touched: [KeyChain] = []
        touched.reserveCapacity(locks.count)
        let txid = assignedID   // nonzero whenever `locks` is not empty
        for (_, entry) in locks {
            let granted = entry.chain.state.withLock { $0.releaseLocked(txid) }
            for c in granted { c.resume() }
            touched.append(entry.chain)
        }
        locks = [:]
        writeOrder = []
        written = []
        undo = []
        savepoints = []
        var advanced = false
        if let s = snapshot {
            advanced = db.oracle.unregisterSnapshot(s, stripe: snapshotStripe)
            snapshot = nil
        }
        db.gc.afterTransaction(touched: touched, horizonAdvanced: advanced, in: db)
    }
}
