import IsoKVConformance
import IsoKVCore
import IsoKVPostgres
import Testing

extension BackendCapabilities {
    /// What PostgreSQL declares: read uncommitted runs as read committed; SERIALIZABLE is SSI; a deadlock is found by
    /// the waiter whose `deadlock_timeout` fires first; any statement error aborts the transaction. It observes lock
    /// waits and deferrable waits through `pg_stat_activity`, and has savepoints, lock timeouts and deferrable
    /// read-only transactions.
    static let postgreSQL = BackendCapabilities(
        readUncommitted: .readCommitted, serializable: .serializableSnapshotIsolation,
        deadlockVictim: .firstWaiterToTimeOut, observableLockWaits: true, savepoints: true, lockTimeout: true,
        deferrableReadOnly: true, failedStatementAbortsTransaction: true)
}

/// PostgreSQL as an IsoKVConformance backend: a fresh schema per replay run, dropped afterwards.
struct PostgresBackend: ConformanceBackend {
    let name = "postgresql"
    let capabilities = BackendCapabilities.postgreSQL

    func makeStore(_ options: StoreOptions) async throws -> PostgresStore {
        var config = try PostgresTestEnvironment.configuration()
        config.client.options.maximumConnections = 8
        config.lockTimeout = options.lockTimeout
        return try await PostgresStore(configuration: config)
    }

    func discardStore(_ store: PostgresStore) async {
        await store.shutdown()
        try? await PostgresTestEnvironment.dropSchema(store.configuration.schema)
    }

    func beginDeferrable(in store: PostgresStore) async throws -> PostgresTransaction {
        try await store.begin(.serializable, readOnly: true, deferrable: true)
    }

    func waitUntilDeferred(_ transaction: TransactionID, in store: PostgresStore) async throws {
        await store.waitUntilDeferred(transaction)
    }
}

/// The whole conformance suite on PostgreSQL, expecting PostgreSQL's documented outcomes (from its capabilities).
@Suite("Postgres conformance", .enabled(if: PostgresTestEnvironment.isAvailable, PostgresTestEnvironment.skipReason))
struct PostgresConformanceTests {
    @Test("every replay at every level ends as PostgreSQL's expected table says")
    func wholeSuite() async {
        let report = await ConformanceRunner(backend: PostgresBackend(), stallTimeout: .seconds(60)).runAll()
        #expect(report.notRun.isEmpty, "PostgreSQL declares every capability the replays need:\n\(report.matrix())")
        if !report.conforms {
            Issue.record("PostgreSQL does not match its expected table:\n\(report.matrix())")
        }
        // The cells that tell PostgreSQL apart, checked by name as well.
        #expect(report.row(.dirtyRead, at: .readUncommitted)?.actual == .preventedBySnapshot)
        #expect(report.row(.writeSkew, at: .snapshot)?.actual == .occurred)
        if case .preventedByError(let code, _, _)? = report.row(.lostUpdate, at: .snapshot)?.actual {
            #expect(code == .serializationFailure)
        } else {
            Issue.record(
                "lost update at repeatable read: expected 40001, got \(String(describing: report.row(.lostUpdate, at: .snapshot)?.actual))"
            )
        }
        #expect(report.row(.writeSkew, at: .serializable)?.actual?.isPrevented == true)
    }
}
