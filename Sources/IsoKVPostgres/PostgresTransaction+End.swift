import IsoKVCore
import PostgresNIO

extension PostgresTransaction {
    /// Commits: `COMMIT`, then the connection goes back to the pool.
    ///
    /// 1. A transaction already failed (client-side state) is rolled back and `25P02` thrown, without sending COMMIT.
    /// 2. `COMMIT` is sent. PostgreSQL may refuse it with `40001` (serializable) — mapped, the transaction is over.
    /// 3. If PostgreSQL answers `ROLLBACK` (its reply to COMMIT in an aborted transaction), `25P02` is thrown.
    /// 4. A lost connection during COMMIT is `08006` with an unknown outcome.
    /// In every case the handle is ended and its connection released.
    ///
    /// ```swift
    /// do { try await tx.commit() }
    /// catch let e as IsoKVError where e.isRetryable { /* 40001 at serializable: run the transaction again */ }
    /// ```
    nonisolated(nonsending) public func commit() async throws {
        if case .failed(let cause, _) = state {
            try await rollback()
            throw Self.aborted(by: cause)
        }
        try checkActive()
        guard let held else { throw IsoKVError(.noActiveTransaction, "transaction \(id) has already ended") }
        let tag: String
        do {
            // The future-based query is the one postgres-nio API that reports the command tag of a row-less statement.
            try held.checkOpen()
            tag = try await held.connection.query("COMMIT").get().metadata.command
        } catch {
            let mapped = PostgresErrorMapping.map(error)
            // After an error, PostgreSQL has ended the transaction (a failed COMMIT rolls back).
            end(.rolledBack, release: PostgresErrorMapping.isConnectionLoss(mapped) ? .clean : .rollback)
            if let e = mapped as? IsoKVError, e.code == .connectionFailure {
                throw IsoKVError(.connectionFailure, e.message + "; the commit may or may not have happened")
            }
            throw mapped
        }
        if tag == "ROLLBACK" {
            end(.rolledBack, release: .clean)
            throw IsoKVError(.transactionAborted, "PostgreSQL rolled the transaction back at COMMIT (it was aborted)")
        }
        end(.committed, release: .clean)
    }

    /// Rolls back and releases the connection. Always succeeds; calling it again does nothing.
    ///
    /// ```swift
    /// do { try await work(tx); try await tx.commit() }
    /// catch { try await tx.rollback(); throw error }      // store.transaction { } does this for you
    /// ```
    nonisolated(nonsending) public func rollback() async throws {
        guard let held else {
            if case .active = state { state = .rolledBack }
            if case .failed = state { state = .rolledBack }
            return
        }
        if !held.connection.isClosed {
            _ = try? await held.connection.query("ROLLBACK", logger: HeldConnection.logger)
        }
        end(.rolledBack, release: .clean)
    }

    /// Ends the handle: state, connection back to the pool, out of the store's open-transaction table.
    func end(_ final: State, release: HeldConnection.Release) {
        state = final
        if let held {
            held.release(release)
            self.held = nil
            store.transactionEnded(id.rawValue)
        }
    }

    /// Records that PostgreSQL (or the connection) failed a statement. A lost connection ends the transaction.
    func fail(_ error: any Error) {
        guard let e = error as? IsoKVError, case .active = state else { return }
        if e.code == .connectionFailure || e.code == .databaseClosed {
            state = .failed(e, recoverable: false)
            if let held {
                held.release(.rollback)  // rolled back by the server already, if the connection is gone
                self.held = nil
                store.transactionEnded(id.rawValue)
            }
            return
        }
        state = .failed(e, recoverable: !e.isRetryable)
    }
}
