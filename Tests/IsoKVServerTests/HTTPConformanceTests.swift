import Foundation
import HummingbirdTesting
import IsoKV
import IsoKVClient
import IsoKVConformance
import IsoKVCore
import IsoKVServer
import Testing

extension BackendCapabilities {
    /// What a store declares when it is reached through `isokv serve` and `IsoKVRemote`, given what the store
    /// behind the server declares. HTTP changes four facts:
    /// - lock waits and deferrable waits cannot be observed from the client (the server exposes no hook), so the
    ///   replays that order a step after a wait are not run;
    /// - no per-store lock timeout (the server refuses `lock_timeout_ms`; NOWAIT is available per locking read);
    /// - the server fails a transaction at its first failed operation, whatever the store does.
    func throughHTTP() -> BackendCapabilities {
        var c = self
        c.observableLockWaits = false
        c.lockTimeout = false
        c.deferrableReadOnly = false
        c.failedStatementAbortsTransaction = true
        return c
    }

    static let embeddedEngine = BackendCapabilities(
        readUncommitted: .dirtyReads, serializable: .serializableSnapshotIsolation,
        deadlockVictim: .requesterClosingCycle, observableLockWaits: true, savepoints: true, lockTimeout: true,
        deferrableReadOnly: true, failedStatementAbortsTransaction: false)

    static let postgreSQLServer = BackendCapabilities(
        readUncommitted: .readCommitted, serializable: .serializableSnapshotIsolation,
        deadlockVictim: .firstWaiterToTimeOut, observableLockWaits: true, savepoints: true, lockTimeout: true,
        deferrableReadOnly: true, failedStatementAbortsTransaction: true)
}

/// A server reached through `IsoKVRemote`. The server and its store live for the whole run; each replay gets the
/// store emptied first (every key deleted through the client), which is what a fresh store means to a replay.
struct HTTPBackend: ConformanceBackend {
    let name: String
    let capabilities: BackendCapabilities
    let remote: IsoKVRemote

    func makeStore(_ options: StoreOptions) async throws -> IsoKVRemote {
        try await remote.transaction(.readCommitted) { tx in
            for row in try await tx.scan(.all) { try await tx.delete(row.key) }
        }
        return remote
    }
}

/// Checks a report of a run through HTTP: every cell matches the table expected for the declared capabilities, and
/// the cells not run are exactly those whose replay needs a capability HTTP does not have.
func expectConforms(_ report: ConformanceReport, sourceLocation: SourceLocation = #_sourceLocation) {
    if !report.conforms {
        Issue.record(
            "the server does not match its expected table:\n\(report.matrix())", sourceLocation: sourceLocation)
    }
    for row in report.notRun {
        #expect(
            row.replay.requirements.contains { !report.capabilities.satisfies($0) },
            "\(row.replay) at \(row.level) was not run", sourceLocation: sourceLocation)
    }
    #expect(report.rows.count > report.notRun.count + 10, sourceLocation: sourceLocation)
}

@Suite("Server HTTP conformance Concurrent (the embedded engine behind the server)")
struct HTTPConformanceTests {
    @Test("every replay at every level, through IsoKVRemote, ends as the expected table says")
    func wholeSuiteOnTheEngine() async throws {
        let db = Database.inMemory()
        let server = try IsoKVServer(configuration: ServerConfiguration(port: 0), database: db, closeDatabase: false)
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            let backend = HTTPBackend(
                name: "http (embedded)", capabilities: BackendCapabilities.embeddedEngine.throughHTTP(),
                remote: IsoKVRemote(url: "http://127.0.0.1:\(port)"))
            let report = await ConformanceRunner(backend: backend, stallTimeout: .seconds(60)).runAll()
            expectConforms(report)
            print(report.matrix())
            // What tells the engine apart survives HTTP: dirty reads at read uncommitted, write skew prevented at
            // serializable.
            #expect(report.row(.dirtyRead, at: .readUncommitted)?.actual == .occurred)
            #expect(report.row(.writeSkew, at: .snapshot)?.actual == .occurred)
            #expect(report.row(.writeSkew, at: .serializable)?.actual?.isPrevented == true)
        }
    }
}

@Suite(
    "Server Postgres HTTP conformance (PostgreSQL behind isokv serve)", .serialized,
    .enabled(if: ServerPostgresEnvironment.isAvailable, ServerPostgresEnvironment.skipReason))
struct PostgresHTTPConformanceTests {
    @Test("every replay at every level, through IsoKVRemote and isokv serve --backend postgres://, ends as expected")
    func wholeSuiteOnPostgreSQL() async throws {
        let server = try await ServeProcess.start(arguments: ["--backend", ServerPostgresEnvironment.freshBackend()])
        defer { server.signal(SIGKILL) }
        let backend = HTTPBackend(
            name: "http (postgresql)", capabilities: BackendCapabilities.postgreSQLServer.throughHTTP(),
            remote: IsoKVRemote(url: server.base))
        let report = await ConformanceRunner(backend: backend, stallTimeout: .seconds(60)).runAll()
        expectConforms(report)
        print(report.matrix())
        #expect(report.row(.dirtyRead, at: .readUncommitted)?.actual == .preventedBySnapshot)
        #expect(report.row(.writeSkew, at: .snapshot)?.actual == .occurred)
        #expect(report.row(.writeSkew, at: .serializable)?.actual?.isPrevented == true)
        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)
    }
}
