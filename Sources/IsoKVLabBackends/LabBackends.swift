import AsyncHTTPClient
import Foundation
import IsoKV
import IsoKVClient
import IsoKVConformance
import IsoKVCore
import IsoKVLab
import IsoKVPostgres
import IsoKVServer
import IsoKVSync
import Logging
import PostgresNIO

/// Which backends `isokv lab … --backend` names: `embedded`, a `postgres://…` URL, an `http://…` URL, or `all`
/// (embedded, PostgreSQL when a URL is known, and the HTTP server: the given URL or an in-process server).
///
/// ```swift
/// let specs = try LabBackendSpec.parse("all", postgresURL: nil, httpURL: nil)   // [.embedded, .httpInProcess]
/// ```
public enum LabBackendSpec: Hashable, Sendable {
    case embedded
    case postgres(url: String)
    /// A server on an embedded in-memory store, started in this process on a free loopback port for each run.
    case httpInProcess
    case http(url: String, token: String?)

    /// The backends `text` names. `postgresURL` (from `--postgres` or `ISOKV_POSTGRES_URL`) adds PostgreSQL to
    /// `all`; `httpURL` replaces the in-process server in `all`.
    public static func parse(_ text: String, postgresURL: String?, httpURL: String? = nil, token: String? = nil)
        throws -> [LabBackendSpec]
    {
        if text == "embedded" { return [.embedded] }
        if text == "http" || text == "http-in-process" { return [.httpInProcess] }
        if text == "all" {
            var specs: [LabBackendSpec] = [.embedded]
            if let postgresURL, !postgresURL.isEmpty { specs.append(.postgres(url: postgresURL)) }
            specs.append(httpURL.map { .http(url: $0, token: token) } ?? .httpInProcess)
            return specs
        }
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            _ = try PostgresStore.Configuration(url: text)  // a malformed URL fails here, with its reason
            return [.postgres(url: text)]
        }
        if text.hasPrefix("http://") || text.hasPrefix("https://") { return [.http(url: text, token: token)] }
        throw IsoKVError(
            .invalidInput, "unknown backend \"\(text)\": use embedded, postgres://…, http://… or all")
    }

    /// The name results carry.
    public var name: String {
        switch self {
        case .embedded: return "embedded"
        case .postgres: return "postgresql"
        case .httpInProcess: return "http"
        case .http: return "http"
        }
    }

    /// How the table describes it (URLs without passwords).
    public var description: String {
        switch self {
        case .embedded: return "embedded (in-memory)"
        case .postgres(let url):
            let config = try? PostgresStore.Configuration(url: url)
            return "postgresql \(config?.client.host ?? "?"):\(config?.client.port ?? 0) (a fresh schema per run)"
        case .httpInProcess: return "http (in-process server on an in-memory engine, loopback)"
        case .http(let url, _): return "http \(url)"
        }
    }

    /// Whether every run gets a store nobody else uses (false for an external server: runs then only get a fresh
    /// key prefix, which the anomaly replays, with their fixed keys, cannot use).
    public var isolatesRuns: Bool {
        if case .http = self { return false }
        return true
    }

    /// The backend itself.
    public func backend() throws -> any ConformanceBackend {
        switch self {
        case .embedded: return EmbeddedLabBackend()
        case .postgres(let url): return try PostgresLabBackend(url: url)
        case .httpInProcess: return HTTPLabBackend(mode: .inProcess)
        case .http(let url, let token): return HTTPLabBackend(mode: .external(url: url, token: token))
        }
    }
}

extension BackendCapabilities {
    /// What PostgreSQL declares: read uncommitted runs as read committed; SERIALIZABLE is SSI; a deadlock is found by
    /// the waiter whose `deadlock_timeout` fires first; any statement error aborts the transaction. Lock waits and
    /// deferrable waits are observed through `pg_stat_activity`.
    public static let postgreSQLServer = BackendCapabilities(
        readUncommitted: .readCommitted, serializable: .serializableSnapshotIsolation,
        deadlockVictim: .firstWaiterToTimeOut, observableLockWaits: true, savepoints: true, lockTimeout: true,
        deferrableReadOnly: true, failedStatementAbortsTransaction: true)

    /// The embedded engine behind the HTTP server: its semantics, but a client cannot observe the server's lock
    /// waits or deferrable waits (the client's transaction ids are its own), so replays that need them do not run.
    public static let embeddedOverHTTP = BackendCapabilities(
        readUncommitted: .dirtyReads, serializable: .serializableSnapshotIsolation,
        deadlockVictim: .requesterClosingCycle, observableLockWaits: false, savepoints: true, lockTimeout: true,
        deferrableReadOnly: false, failedStatementAbortsTransaction: false)
}

/// PostgreSQL as a lab backend: each store is a fresh schema (`isokv_lab_<random>`) of the URL's database, dropped
/// when the run discards it.
///
/// ```swift
/// let matrix = await AnomalyMatrix.run(on: try PostgresLabBackend(url: "postgres://postgres@127.0.0.1:5432/postgres"))
/// ```
public struct PostgresLabBackend: ConformanceBackend {
    public let name = "postgresql"
    public let capabilities = BackendCapabilities.postgreSQLServer
    public let url: String
    /// The pool size of each store.
    public var maximumConnections: Int

    public init(url: String, maximumConnections: Int = 24) throws {
        _ = try PostgresStore.Configuration(url: url)
        self.url = url
        self.maximumConnections = maximumConnections
    }

    public func makeStore(_ options: StoreOptions) async throws -> PostgresStore {
        var config = try PostgresStore.Configuration(url: url)
        var rng = SystemRandomNumberGenerator()
        config.schema = "isokv_lab_" + String(rng.next(), radix: 36)
        config.client.options.maximumConnections = maximumConnections
        config.connectionTimeout = .seconds(20)
        config.lockTimeout = options.lockTimeout
        return try await PostgresStore(configuration: config)
    }

    public func discardStore(_ store: PostgresStore) async {
        await store.shutdown()
        try? await dropSchema(store.configuration.schema)
    }

    public func beginDeferrable(in store: PostgresStore) async throws -> PostgresTransaction {
        try await store.begin(.serializable, readOnly: true, deferrable: true)
    }

    public func waitUntilDeferred(_ transaction: TransactionID, in store: PostgresStore) async throws {
        await store.waitUntilDeferred(transaction)
    }

    /// `DROP SCHEMA … CASCADE` on a connection of its own (the store's pool is shut down by then).
    func dropSchema(_ schema: String) async throws {
        let c = try PostgresStore.Configuration(url: url).client
        guard let host = c.host, let port = c.port else { return }
        let logger = Logger(label: "isokv.lab")
        let connection = try await PostgresConnection.connect(
            configuration: .init(
                host: host, port: port, username: c.username, password: c.password, database: c.database,
                tls: .disable),
            id: 1, logger: logger)
        do {
            try await connection.query(
                PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE"), logger: logger)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

/// The HTTP server as a lab backend, through `IsoKVRemote`: either a server started in this process for each run
/// (a fresh in-memory engine on a free loopback port, stopped when the run discards it), or an external server
/// (the same store every run; runs are kept apart by their key prefix only).
public struct HTTPLabBackend: ConformanceBackend {
    public enum Mode: Sendable, Hashable {
        case inProcess
        case external(url: String, token: String?)
    }

    public let name = "http"
    public let capabilities = BackendCapabilities.embeddedOverHTTP
    public let mode: Mode
    /// Per store: its HTTP client, and the in-process server's task.
    private let running = Locked<[ObjectIdentifier: (client: HTTPClient, server: Task<Void, Never>?)]>([:])

    public init(mode: Mode) { self.mode = mode }

    /// A client of its own per store, with a connection per concurrent request: a transaction waiting for a row
    /// lock holds its connection, so a pool smaller than the experiment's concurrency (AsyncHTTPClient's default is
    /// 8 per host) would leave the lock holder's next request queued behind the waiters until the server's idle
    /// timeout.
    static func makeClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1_024)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    public func makeStore(_ options: StoreOptions) async throws -> IsoKVRemote {
        switch mode {
        case .external(let url, let token):
            let client = Self.makeClient()
            let store = IsoKVRemote(url: url, token: token, client: client)
            running.withLock { $0[ObjectIdentifier(store)] = (client, nil) }
            return store
        case .inProcess:
            let db = Database.inMemory(Database.Configuration(lockTimeout: options.lockTimeout))
            var configuration = ServerConfiguration(port: 0)
            configuration.host = "127.0.0.1"
            var logger = Logger(label: "isokv.lab.server")
            logger.logLevel = .critical  // a cancelled server logs its shutdown as errors
            let (ports, bound) = AsyncStream<Int>.makeStream()
            let server = try IsoKVServer(
                configuration: configuration, database: db, closeDatabase: true, logger: logger,
                onRunning: { port in
                    bound.yield(port)
                    bound.finish()
                })
            let task = Task {
                do {
                    try await server.application.runService(gracefulShutdownSignals: [])
                } catch {
                    bound.finish()
                }
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next(), port > 0 else {
                task.cancel()
                await task.value
                throw IsoKVError(.connectionFailure, "the in-process HTTP server did not start")
            }
            let client = Self.makeClient()
            let store = IsoKVRemote(url: "http://127.0.0.1:\(port)", client: client)
            running.withLock { $0[ObjectIdentifier(store)] = (client, task) }
            return store
        }
    }

    public func discardStore(_ store: IsoKVRemote) async {
        guard let entry = running.withLock({ $0.removeValue(forKey: ObjectIdentifier(store)) }) else { return }
        try? await entry.client.shutdown()
        if let server = entry.server {
            server.cancel()
            await server.value
        }
    }
}
