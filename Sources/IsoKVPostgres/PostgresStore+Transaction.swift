import IsoKVCore
import PostgresNIO

extension PostgresStore {
    /// Begins a transaction at `isolation` (see ``begin(_:readOnly:deferrable:lockTimeout:)``).
    nonisolated(nonsending) public func begin(_ isolation: IsolationLevel, readOnly: Bool) async throws
        -> PostgresTransaction
    {
        try await begin(isolation, readOnly: readOnly, deferrable: false, lockTimeout: nil)
    }

    /// Begins a transaction on a connection of its own:
    /// `START TRANSACTION ISOLATION LEVEL … READ ONLY|READ WRITE [DEFERRABLE]`, then `SET LOCAL lock_timeout` if
    /// `lockTimeout` is given (otherwise ``Configuration/lockTimeout`` applies).
    ///
    /// | IsoKV level        | PostgreSQL level   | note |
    /// |--------------------|--------------------|------|
    /// | `.readUncommitted` | READ UNCOMMITTED   | runs as READ COMMITTED: no dirty reads |
    /// | `.readCommitted`   | READ COMMITTED     | |
    /// | `.snapshot`        | REPEATABLE READ    | snapshot isolation, first updater wins (`40001`) |
    /// | `.serializable`    | SERIALIZABLE       | SSI (`40001`) |
    ///
    /// `deferrable` (with `.serializable` and `readOnly` only; ignored otherwise, as PostgreSQL does) makes the first
    /// statement wait for a safe snapshot; such a transaction never fails with `40001`.
    ///
    /// ```swift
    /// let report = try await store.begin(.serializable, readOnly: true, deferrable: true)
    /// let rows = try await report.scan(prefix: "acct/")
    /// try await report.commit()
    /// ```
    nonisolated(nonsending) public func begin(
        _ isolation: IsolationLevel, readOnly: Bool, deferrable: Bool,
        lockTimeout: Duration? = nil
    ) async throws -> PostgresTransaction {
        if let lockTimeout, lockTimeout < .zero { throw IsoKVError(.invalidInput, "lockTimeout must not be negative") }
        let held = try await lease()
        let id = newTransactionID()
        do {
            let connection = held.connection
            let pid = try await backendPID(of: connection)
            let level: String
            switch isolation {
            case .readUncommitted: level = "READ UNCOMMITTED"
            case .readCommitted: level = "READ COMMITTED"
            case .snapshot: level = "REPEATABLE READ"
            case .serializable: level = "SERIALIZABLE"
            }
            var sql = "START TRANSACTION ISOLATION LEVEL \(level) " + (readOnly ? "READ ONLY" : "READ WRITE")
            if deferrable && readOnly && isolation == .serializable { sql += " DEFERRABLE" }
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: HeldConnection.logger)
            if let lockTimeout {
                try await connection.query(
                    PostgresQuery(unsafeSQL: "SET LOCAL lock_timeout = '\(Configuration.milliseconds(lockTimeout))'"),
                    logger: HeldConnection.logger)
            }
            state.withLock { $0.openTransactions[id] = pid }
        } catch {
            held.release(.rollback)
            throw PostgresErrorMapping.map(error)
        }
        return PostgresTransaction(store: self, held: held, id: id, isolation: isolation, readOnly: readOnly)
    }
}
