import IsoKVCore
extension Transaction {
    /// Scans `range` in key order (descending when `reverse`), returning at most `limit` visible rows.
    ///
    /// One scan sees one snapshot: the transaction's at `.snapshot`, a fresh registered statement snapshot at
    /// `.readCommitted` (so a concurrent commit is seen entirely or not at all), and, at `.readUncommitted`, the
    /// newest state of each row as it is reached. Own writes are always seen.
    ///
    /// With `lock`, each row that is visible is locked before it is returned: `.block` waits, `.noWait` throws
    /// `55P03`, `.skipLocked` leaves the row out. After a wait, `.snapshot` applies first updater wins (`40001`),
    /// and the weaker levels re-read the newest committed version and leave the row out if it was deleted (as
    /// PostgreSQL re-checks a row it waited for).
    nonisolated(nonsending) public func scan(
        _ range: KeyRange, limit: Int?, reverse: Bool, lock: RowLockMode?, wait: LockWait
    ) async throws
        -> [KeyValue]
    {
        if lock != nil { try checkWritable() } else { try checkActive() }
        let max = try db.limits.scanRows(limit)
        if lock == nil && wait == .skipLocked {
            throw IsoKVError(.invalidInput, "wait: .skipLocked needs a lock mode")
        }
        if max == 0 { return [] }
        let dirty = isolation == .readUncommitted
        if isDeferrable && snapshot == nil { try await waitForSafeSnapshot() }
        var snap = ensureSnapshot()
        let serial = isolation == .serializable
        let rangeLock = serial ? try serializableBeginScan(range) : nil
        var statementSnapshot: UInt64?
        if isolation == .readCommitted {
            statementSnapshot = db.oracle.registerSnapshot(stripe: snapshotStripe)
            snap = statementSnapshot
        }
        defer {
            if let s = statementSnapshot, db.oracle.unregisterSnapshot(s, stripe: snapshotStripe) {
                db.gc.afterTransaction(touched: [], horizonAdvanced: true, in: db)
            }
        }
        var out: [KeyValue] = []
        out.reserveCapacity(Swift.min(max, 128))  // (a short scan fills it without growing)
        if lock == nil {
            // A plain scan walks the published index in place (no lock, no copy of the entries) and reads each
            // chain it meets through the entry's chain, without a directory lookup. Committed data at a registered
            // snapshot is read from the chain's version list without its mutex (the index's epoch also covers the
            // version lists); a chain this transaction wrote, a dirty read and a tracked serializable read take the mutex.
            let txid = assignedID
            // A serializable transaction that is not tracked (a read-only one found safe) reads as `.snapshot` does.
            let lockFree = !dirty && !(serial && trackedHandle != nil) && snap != nil
            let wroteAny = !written.isEmpty
            if lockFree && !wroteAny {
                // The common case: committed data only (Database+Read.swift), the walk a `Database.read` scan takes.
                db.scanCommitted(range, snapshot: snap!, max: max, reverse: reverse, into: &out)
                return out
            }
            try db.index.read { idx in
                try idx.forEachInPlace(in: range, after: nil, reverse: reverse) { lent in
                    let entry = lent.pointee
                    let value =
                        serial
                        ? try serializableRead(
                            entry.key, snapshot: snap!, pointLock: false, scanned: range, chain: entry.value)
                        : lockFree && !written.contains(ObjectIdentifier(entry.value))
                            ? entry.value.committedValue(at: snap!)
                                ?? db.read(entry.key, txid: txid, snapshot: snap, dirty: false)  // retired: look up
                            : db.read(entry.key, txid: txid, snapshot: snap, dirty: dirty, chain: entry.value)
                    if let value { out.append(KeyValue(key: entry.key, value: value)) }
                    return out.count < max
                }
            }
        }
        var cursor: Bytes?
        while lock != nil && out.count < max {
            // A locking scan may wait for a row lock, so it copies batches of entries out of the index (no larger
            // than the rows still wanted plus slack for invisible keys, at most 128) and then locks row by row.
            let want = Swift.min(128, Swift.max(16, max - out.count + 4))
            let batch = db.index.read { $0.entries(in: range, after: cursor, reverse: reverse, max: want) }
            if batch.isEmpty { break }
            for entry in batch {
                let key = entry.key
                cursor = key
                guard
                    var value = serial
                        ? try serializableRead(
                            key, snapshot: snap!, pointLock: false, scanned: range, chain: entry.value)
                        : db.read(key, txid: assignedID, snapshot: snap, dirty: dirty, chain: entry.value)
                else { continue }
                if let lock {
                    try checkActive()
                    guard let chain = try await acquireRow(key, lock, wait: wait) else { continue }
                    if !isolation.hasTransactionSnapshot {
                        let txid = self.txid
                        guard let newest = chain.state.withLock({ $0.read(txid: txid, snapshot: .max, dirty: false) })
                        else { continue }
                        value = newest
                    }
                }
                out.append(KeyValue(key: key, value: value))
                if out.count == max { break }
            }
        }
        if let rangeLock, out.count == max, let last = out.last?.key {
            serializableNarrowScan(rangeLock, range, reverse: reverse, lastKey: last)
        }
        return out
    }
}
