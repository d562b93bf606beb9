import IsoKVCore
import IsoKVPostgres
import IsoKVServer

/// PostgreSQL behind `isokv serve --backend postgres://…`: the server uses the store contract plus these
/// capabilities. Versions come from one sequence at write time, so they are not commit numbers: no
/// ``CommitVersionReporting`` (a batch's or a transaction's writes are reported without versions), no starting
/// revision, and a connection failure is not fail-stop (the pool reconnects).
extension PostgresStore: ServerBackend, DeferrableTransactions {
    public var backendName: String { "postgresql" }

    nonisolated(nonsending) public func closeForShutdown() async { await shutdown() }

    nonisolated(nonsending) public func begin(_ isolation: IsolationLevel, readOnly: Bool, deferrable: Bool)
        async throws -> PostgresTransaction
    {
        try await begin(isolation, readOnly: readOnly, deferrable: deferrable, lockTimeout: nil)
    }
}
