import IsoKVCore
import PostgresNIO

extension PostgresTransaction {
    /// `SAVEPOINT s<n>`: a point that ``rollback(to:)`` can return to.
    ///
    /// ```swift
    /// let sp = try await tx.savepoint()
    /// try await tx.put("a", "2")
    /// try await tx.rollback(to: sp)      // "a" is back to what it was at `sp`, and its lock is released
    /// ```
    nonisolated(nonsending) public func savepoint() async throws -> Savepoint {
        try checkActive()
        let sp = Savepoint(transaction: id, id: nextSavepointID)
        _ = try await run {
            try await $0.query(PostgresQuery(unsafeSQL: "SAVEPOINT s\(sp.id)"), logger: HeldConnection.logger)
        }
        nextSavepointID += 1
        savepoints.append((sp.id, writtenKeys.count))
        return sp
    }

    /// `ROLLBACK TO SAVEPOINT`: undoes the writes made after `savepoint` and releases the row locks first taken after
    /// it. The savepoint stays; later ones are gone. Also revives a transaction failed by a non-retryable server error
    /// (`55P03`, `22003`, …) made after `savepoint`, as PostgreSQL allows; after `40001`/`40P01` it throws `25P02`.
    nonisolated(nonsending) public func rollback(to savepoint: Savepoint) async throws {
        switch state {
        case .failed(_, recoverable: true): break
        default: try checkActive()
        }
        let index = try position(of: savepoint)
        _ = try await run {
            try await $0.query(
                PostgresQuery(unsafeSQL: "ROLLBACK TO SAVEPOINT s\(savepoint.id)"),
                logger: HeldConnection.logger)
        }
        if case .failed = state { state = .active }
        for key in writtenKeys[savepoints[index].writtenMark...] { writtenSet.remove(key) }
        writtenKeys.removeSubrange(savepoints[index].writtenMark...)
        savepoints.removeSubrange((index + 1)...)
    }

    /// `RELEASE SAVEPOINT`: forgets `savepoint` and the ones after it, keeping their writes and locks.
    nonisolated(nonsending) public func release(_ savepoint: Savepoint) async throws {
        try checkActive()
        let index = try position(of: savepoint)
        _ = try await run {
            try await $0.query(
                PostgresQuery(unsafeSQL: "RELEASE SAVEPOINT s\(savepoint.id)"),
                logger: HeldConnection.logger)
        }
        savepoints.removeSubrange(index...)
    }

    /// `3B001` before any SQL for a savepoint of another transaction, released, or rolled back past.
    private func position(of savepoint: Savepoint) throws -> Int {
        guard savepoint.transaction == id, let i = savepoints.firstIndex(where: { $0.id == savepoint.id }) else {
            throw IsoKVError(.invalidSavepoint, "savepoint \(savepoint.id) does not exist in transaction \(id)")
        }
        return i
    }
}
