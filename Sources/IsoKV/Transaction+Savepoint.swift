import IsoKVCore
extension Transaction {
    /// Marks a point to return to with ``rollback(to:)``.
    ///
    /// ```swift
    /// let sp = try await tx.savepoint()
    /// try await tx.put("a", "2")
    /// try await tx.rollback(to: sp)      // "a" is back to what it was at `sp`
    /// ```
    nonisolated(nonsending) public func savepoint() async throws -> Savepoint {
        try checkActive()
        let sp = Savepoint(transaction: id, id: nextSavepointID)
        nextSavepointID += 1
        savepoints.append((sp.id, undo.count))
        return sp
    }

    /// Undoes the writes made after `savepoint`; releases the row locks first taken after it and returns upgraded
    /// ones to their earlier mode (PostgreSQL releases locks taken in a rolled-back subtransaction and keeps those
    /// held before it). `savepoint` stays usable; the savepoints made after it are gone.
    nonisolated(nonsending) public func rollback(to savepoint: Savepoint) async throws {
        try checkActive()
        let index = try position(of: savepoint)
        let mark = savepoints[index].undoMark
        while undo.count > mark {
            switch undo.removeLast() {
            case .write(let chain, let previous, let firstWrite):
                chain.state.withLock { $0.pending = previous }
                if firstWrite {
                    written.remove(ObjectIdentifier(chain))
                    writeOrder.removeLast()
                }
            case .lock(let chain, let previous):
                let txid = self.txid
                let granted = chain.state.withLock { $0.restoreLocked(txid, to: previous) }
                for c in granted { c.resume() }
                let id = ObjectIdentifier(chain)
                if let previous {
                    locks[id] = (chain, previous)
                } else {
                    locks[id] = nil
                    // The chain may now be empty and unlocked (a lock taken on an absent key): collect it.
                    _ = db.gc.prune(chain, horizon: db.oracle.horizon(), in: db)
                }
            }
        }
        savepoints.removeSubrange((index + 1)...)
    }

    /// Forgets `savepoint` and the savepoints made after it; their writes and locks stay.
    nonisolated(nonsending) public func release(_ savepoint: Savepoint) async throws {
        try checkActive()
        let index = try position(of: savepoint)
        savepoints.removeSubrange(index...)
        if savepoints.isEmpty { undo.removeAll() }
    }

    private func position(of savepoint: Savepoint) throws -> Int {
        guard savepoint.transaction == id, let i = savepoints.firstIndex(where: { $0.id == savepoint.id }) else {
            throw IsoKVError(.invalidSavepoint, "savepoint \(savepoint.id) does not exist in transaction \(id)")
        }
        return i
    }
}
