import IsoKVCore
import IsoKVStorage

extension Transaction {
    /// Commits: makes every write visible atomically, then releases the locks.
    ///
    /// The one commit protocol, for the in-memory and the durable database alike (DESIGN.md, "Commit" and
    /// "Durable database"):
    /// 1. A dead transaction (`40001`/`40P01` earlier) throws `25P02`; an ended one `25P01`.
    /// 2. No pending write: nothing to publish. A tracked serializable transaction still gets its SSI commit mark
    ///    (a read-only one hands it over without waiting for the SSI lock).
    /// 3. SSI pre-commit check (tracked `.serializable` only). Durable: now, leaving the transaction `prepared`
    ///    (it can no longer be a victim) before its record goes to the log. In memory: inside step 4's critical
    ///    section, so that the check, the commit mark and the publication are one event.
    /// 4. Under the oracle's commit lock: `ts = last + 1`; durable: enqueue the record (so log order = `ts`
    ///    order); install each pending write as the version `ts` of its chain (invisible: every snapshot is
    ///    `≤ published < ts`); `last = ts`. In memory, publish `ts` here too.
    /// 5. Durable: outside every lock, suspended, wait until the record is durable (group commit); then publish
    ///    (`published = max(published, ts)`, inside the SSI lock with the commit mark when serializable). A failed
    ///    write or fsync takes the versions back out (never published) and ends the transaction with `58030`.
    /// 6. Release the row locks (waking waiters), unregister the snapshot, prune the touched chains
    ///    (`endTransaction(_:)`); durable: maybe start a background checkpoint.
    ///
    /// Inlinable around the synchronous `commitWithoutWrites()`, as ``get(_:)`` is around its read: the commit of
    /// a transaction that wrote nothing is a plain call.
    @inlinable
    nonisolated(nonsending) public func commit() async throws {
        if try commitWithoutWrites() { return }
        _ = try await commitReturningVersion()
    }

    /// Step 2 for a transaction that wrote nothing and has no SSI record (none at all, or a lazy read-only one
    /// never registered), without an async call (the commit of every read-only transaction; strict mode goes the
    /// long way, to run its check). Returns false, having done nothing, for any other transaction.
    @usableFromInline
    func commitWithoutWrites() throws -> Bool {
        guard
            writeOrder.isEmpty && (serializable == nil || serializable!.lazySlot != nil)
                && !db.configuration.checkAfterEveryCommit
        else { return false }
        try checkActive()
        endTransaction(.committed)
        return true
    }

    /// ``commit()`` returning the commit sequence number (the new version of every key written), or nil if nothing
    /// was written.
    @discardableResult @usableFromInline
    nonisolated(nonsending) package func commitReturningVersion() async throws -> UInt64? {
        // Strict mode (`Configuration.checkAfterEveryCommit`, Database+Check.swift): this commit, then `check()`.
        if db.configuration.checkAfterEveryCommit && !inStrictCommit { return try await commitThenCheck() }
        try checkActive()  // 1
        let ssiXact = try serializableCommitHandle()
        let pointKeys = ssiXact == nil ? [] : (serializable?.pointKeys ?? [])
        guard !writeOrder.isEmpty else {  // 2
            if let ssiXact, isReadOnly {
                try checkNotDoomed(ssiXact)
                withSSI { $0.finishReadOnly(ssiXact, pointKeys: pointKeys) }
                serializable = nil
            } else if let ssiXact, let failure = withSSI({ $0.commit(ssiXact, pointKeys: pointKeys, publish: {}) }) {
                throw abort(failure)
            }
            endTransaction(.committed)
            return nil
        }
        let version: UInt64?
        if let durable = db.durable {
            if let ssiXact, let failure = db.ssi.prepare(ssiXact, pointKeys: pointKeys) { throw abort(failure) }  // 3
            version = try await commitDurably(durable, ssi: ssiXact)  // 4, 5
        } else {
            version = try commitInMemory(ssi: ssiXact, pointKeys: pointKeys)  // 3, 4
        }
        endTransaction(.committed)  // 6
        db.durable?.afterCommit(db)
        return version
    }

    /// Steps 3–4 in memory: one critical section of the commit lock (and, when serializable, of the SSI lock inside
    /// it, where the pre-commit check runs) assigns `ts`, installs and publishes.
    private func commitInMemory(ssi: SerializableXact?, pointKeys: [Bytes]) throws -> UInt64 {
        prepareVersions()
        var failure: IsoKVError?
        // The oracle and the SSI manager unretained (`Database.oracleRef`, `ssiRef`): their reference counts sit
        // on lines every committer shares.
        let ts = db.oracleRef._withUnsafeGuaranteedRef { oracle in
            oracle.commitLock.withLock { last -> UInt64 in
                func installAndPublish() -> UInt64 {
                    let ts = installLocked(last: &last)
                    oracle.published.store(ts, ordering: .releasing)
                    return ts
                }
                guard let ssi else { return installAndPublish() }
                var ts: UInt64 = 0
                failure = withSSI { $0.commit(ssi, pointKeys: pointKeys) { ts = installAndPublish() } }
                return ts
            }
        }
        if let failure { throw abort(failure) }
        return ts
    }

    /// Steps 4–5 on a durable database: the record is enqueued in the log under the commit lock, in `ts` order,
    /// and awaited outside it. The pending writes are stable meanwhile: this transaction holds their exclusive row
    /// locks until step 6.
    nonisolated(nonsending) private func commitDurably(_ durable: DurableStore, ssi: SerializableXact?) async throws
        -> UInt64?
    {
        let writes = pendingWrites()
        // Every write was undone by rollbacks to savepoints: nothing to log or publish.
        if writes.isEmpty {
            if let ssi { db.ssi.finishPrepared(ssi, commitTS: nil, publish: {}) }
            return nil
        }
        prepareVersions()
        let oracle = db.oracle
        let log = durable.log
        let enqueued = oracle.commitLock.withLock { last -> Result<(UInt64, DurabilityTicket), StorageError> in
            let record = CommitRecord(
                sequence: last + 1,
                writes: writes.map {
                    KeyWrite(key: $0.key, value: $0.value, version: last + 1)
                })
            let ticket: DurabilityTicket
            do throws(StorageError) {
                ticket = try log.enqueue(record)
            } catch {
                return .failure(error)  // nothing installed
            }
            let ts = installLocked(last: &last)
            // Before the commit lock is released: a later commit's publication must find it (SSIManager.commitPreparedLocked).
            ssi?.preparedTS.store(ts, ordering: .releasing)
            return .success((ts, ticket))
        }
        let ts: UInt64
        let ticket: DurabilityTicket
        switch enqueued {
        case .success(let value): (ts, ticket) = value
        case .failure(let error): throw fail(DurableStore.commitError(error))
        }
        do {
            try await log.waitDurable(ticket)
        } catch {
            // Not durable, so never visible: take the versions back out (nobody else can have written these rows,
            // whose exclusive locks we hold; GC keeps them, as ts > published ≥ horizon).
            for chain in writeOrder {
                chain.removeNewestVersion(commitTS: ts, reclaimer: db.index.reclaimer)
            }
            throw fail(DurableStore.commitError(error as? StorageError ?? .logFailed(cause: "\(error)")))
        }
        if let hook = durable.options.beforePublish { await hook(ts) }
        // Publishing `ts` makes every commit up to it visible, and may come before theirs (two commits acknowledged
        // by one fsync resume in either order): SSI marks the prepared serializable ones among them committed in
        // the same event.
        if let ssi {
            db.ssi.finishPrepared(ssi, commitTS: ts) { oracle.publish(atLeast: ts) }
        } else {
            db.ssi.publishDurable(ts) { oracle.publish(atLeast: ts) }
        }
        return ts
    }

    /// Step 4's install, with the commit lock held (`last` is its value): `ts = last + 1` becomes the version of
    /// every pending write of this transaction, and `last = ts`. Returns `ts`.
    private func installLocked(last: inout UInt64) -> UInt64 {
        let ts = last + 1
        let txid = self.txid
        for chain in writeOrder {
            chain.state.withLock { $0.installLocked(owner: txid, commitTS: ts) }
        }
        last = ts
        return ts
    }

    /// Builds the version node of each pending write that has none yet (`PendingWrite.version`: past a
    /// transaction's first writes) before the commit's critical sections, so that the install under the commit
    /// lock allocates nothing. The value is read and the node stored under the
    /// chain's mutex; the node is built between the two, under no lock. The pending writes are stable: this
    /// transaction holds their exclusive row locks, and only it changes them.
    private func prepareVersions() {
        guard unpreparedWrites else { return }
        unpreparedWrites = false
        let txid = self.txid
        for chain in writeOrder {
            let pending = chain.state.withLock { s -> PendingWrite? in s.pending?.owner == txid ? s.pending : nil }
            guard let pending, pending.version == nil else { continue }
            let node = pending.makeVersion()
            chain.state.withLock { $0.pending?.version = node }
        }
    }

    /// This transaction's pending writes (key, value or nil for a delete), in write order. Writes undone by a
    /// rollback to a savepoint are not pending any more and are left out.
    private func pendingWrites() -> [(key: [UInt8], value: [UInt8]?)] {
        let txid = self.txid
        var writes: [(key: [UInt8], value: [UInt8]?)] = []
        writes.reserveCapacity(writeOrder.count)
        for chain in writeOrder {
            let pending = chain.state.withLock { s -> PendingWrite? in s.pending?.owner == txid ? s.pending : nil }
            if let pending { writes.append((chain.key.bytes, pending.value?.bytes)) }
        }
        return writes
    }

    /// Ends the transaction failed with a storage error (not counted as an abort: nothing was wrong with it).
    private func fail(_ error: IsoKVError) -> IsoKVError {
        failure = error
        endTransaction(.failed)
        return error
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
            failure = error
            endTransaction(.failed)
        }
        return error
    }

    /// Releases everything and moves to `final`: pending writes (not yet installed) are dropped with the locks.
    func endTransaction(_ final: State) {
        state = final
        if serializable != nil { serializableEnd(committed: { if case .committed = final { true } else { false } }()) }
        var touched: [KeyChain] = []
        if !locks.isEmpty {  // (a read-only transaction skips the collections' stores and releases)
            touched.reserveCapacity(locks.count)
            let txid = assignedID  // nonzero whenever `locks` is not empty
            for (_, entry) in locks {
                let granted = entry.chain.state.withLock { $0.releaseLocked(txid) }
                for c in granted { c.resume() }
                touched.append(entry.chain)
            }
            locks = [:]
            writeOrder = []
            written = []
        }
        if !undo.isEmpty { undo = [] }
        if !savepoints.isEmpty { savepoints = [] }
        releaseSnapshotAndCollect(touched: touched)
    }

    /// Releases the snapshot, if one is registered, then lets garbage collection prune `touched` and sweep if the
    /// release may have moved the horizon. At the end of the transaction, and when a deferrable transaction drops
    /// an unsafe snapshot (an end that found that registration older than its own left the sweep to it).
    @inline(__always)
    func releaseSnapshotAndCollect(touched: [KeyChain]) {
        var advanced = false
        let released = snapshot
        if let s = released {
            advanced = releaseSnapshot(s)
            snapshot = nil
        }
        db.gcRef._withUnsafeGuaranteedRef {
            $0.afterTransaction(touched: touched, horizonAdvanced: advanced, released: released, in: db)
        }
    }
}
