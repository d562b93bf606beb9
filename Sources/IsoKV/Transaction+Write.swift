import IsoKVCore
extension Transaction {
    /// Writes `value` at `key`, waiting for its row lock if another transaction holds it.
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes) async throws {
        _ = try await write(key, value, mustBeAbsent: false)
    }

    /// Writes `value` at `key` unless a value is visible or committed there (`23505`).
    nonisolated(nonsending) public func insert(_ key: Bytes, _ value: Bytes) async throws {
        _ = try await write(key, value, mustBeAbsent: true)
    }

    @discardableResult
    nonisolated(nonsending) public func delete(_ key: Bytes) async throws -> Bool {
        try await write(key, nil, mustBeAbsent: false)
    }

    /// Locks `key`'s row in `mode` and returns its value: at `.snapshot` the snapshot's (which, once the lock is
    /// held and the first-updater check passed, is the newest committed one); at the other levels the newest
    /// committed. With `wait: .skipLocked`, returns nil without locking if another transaction holds the lock.
    @discardableResult
    nonisolated(nonsending) public func lock(_ key: Bytes, _ mode: RowLockMode, wait: LockWait) async throws -> Bytes? {
        try checkWritable()
        try db.limits.check(key: key)
        _ = ensureSnapshot()
        if isolation == .serializable { try serializableLockRead(key) }
        guard let chain = try await acquireRow(key, mode, wait: wait) else { return nil }
        let txid = self.txid
        return chain.state.withLock { $0.read(txid: txid, snapshot: .max, dirty: false) }
    }

    /// The shared write path: exclusive lock, first-updater check, then the pending write. Returns whether a value
    /// was there (own write or newest committed version) before.
    nonisolated(nonsending) func write(_ key: Bytes, _ value: Bytes?, mustBeAbsent: Bool) async throws -> Bool {
        try checkWritable()
        try db.limits.check(key: key)
        if let value { try db.limits.check(value: value, key: key) }
        _ = ensureSnapshot()
        guard let chain = try await acquireRow(key, .forUpdate, wait: .block) else { return false }
        let id = ObjectIdentifier(chain)
        let firstWrite = !written.contains(id)
        if firstWrite && written.count >= db.limits.maxWritesPerTransaction {
            throw IsoKVError(
                .limitExceeded,
                "more than maxWritesPerTransaction (\(db.limits.maxWritesPerTransaction)) keys written",
                key: key)
        }
        let recordUndo = !savepoints.isEmpty
        let txid = self.txid
        let write = PendingWrite(
            owner: txid, value: value, buildVersion: writeOrder.count < PendingWrite.versionsBuiltAtWrite)
        if write.version == nil { unpreparedWrites = true }
        // With the exclusive lock held nobody else can install a version here, so "newest" is stable.
        let outcome: (existed: Bool, previous: PendingWrite?)? = chain.state.withLock { s in
            let existed = s.read(txid: txid, snapshot: .max, dirty: false) != nil
            if mustBeAbsent && existed { return nil }
            let previous = s.pending
            s.pending = write
            return (existed, previous)
        }
        guard let outcome else {
            throw IsoKVError(.uniqueViolation, "duplicate key", key: key)
        }
        if recordUndo { undo.append(.write(chain, previous: outcome.previous, firstWrite: firstWrite)) }
        if firstWrite {
            written.insert(id)
            writeOrder.append(chain)
        }
        if isolation == .serializable { try serializableAfterWrite(key, chain: chain) }
        return outcome.existed
    }

    /// Takes `txid`'s row lock on `key` (creating the chain if needed) and, at `.snapshot`, applies first updater
    /// wins. Returns nil only for `.skipLocked` when another transaction holds the lock.
    ///
    /// Errors: `40P01` and `40001` kill the transaction (undo and unlock everything at once); `55P03` and
    /// cancellation fail only this call.
    nonisolated(nonsending) func acquireRow(_ key: Bytes, _ mode: RowLockMode, wait: LockWait) async throws -> KeyChain?
    {
        while true {
            let chain = db.chainForWriting(key)
            let acquired: LockManager.Acquired
            do {
                acquired = try await db.lockManager.acquire(
                    chain, txid: txid, mode: mode, wait: wait,
                    timeout: db.configuration.lockTimeout)
            } catch let e as IsoKVError {
                if e.isRetryable { throw abort(e) }
                db.failureCounts.count(e.code)
                throw e
            }
            switch acquired {
            case .retired:
                db.forget(retired: chain)
                continue
            case .skipped: return nil
            case .held: return chain
            case .granted(let previous):
                let id = ObjectIdentifier(chain)
                locks[id] = (chain, mode)
                if !savepoints.isEmpty { undo.append(.lock(chain, previous: previous)) }
                // First updater wins: a version committed after our snapshot means a concurrent transaction
                // changed the row first (directly, or while we waited for it).
                if let snap = snapshot,
                    let newest = chain.state.withLock({ $0.newest }), newest.commitTS > snap
                {
                    throw abort(
                        IsoKVError(
                            .serializationFailure,
                            "could not serialize access due to concurrent update",
                            key: key, otherTransaction: TransactionID(rawValue: newest.creator)))
                }
                return chain
            }
        }
    }
}
