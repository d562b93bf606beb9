import IsoKVCore
import IsoKVSync
import PostgresNIO

/// The store contract over PostgreSQL: the same API, isolation levels, row locks and error codes as the embedded
/// engine, on a database that already scales and replicates. One table (`isokv_kv`: `bytea` key, `bytea` value,
/// `bigint` version from one sequence) in a schema of its own; postgres-nio's `PostgresClient` and its pool
/// underneath.
///
/// ```swift
/// let store = try await PostgresStore(configuration: .init(url: "postgres://postgres@127.0.0.1:5432/postgres"))
/// let n = try await store.transaction(.serializable) { tx in
///     let n = (try await tx.get("counter")?.int64 ?? 0) + 1
///     try await tx.put("counter", Bytes(n))
///     return n
/// }
/// let v = try await store.get("counter")                      // value and version (the ETag)
/// try await store.put("counter", "0", ifVersion: v!.version)  // IK412 if someone wrote in between
/// await store.shutdown()
/// ```
///
/// Lifecycle (postgres-nio's pattern, with the run task owned by the store): `init` starts the client's `run()` in
/// a task the store owns, then creates or checks the schema (and throws, after shutting the client down, if it
/// cannot). ``shutdown()`` ends that task and closes the pool's connections; call it when done — or use
/// ``withStore(configuration:_:)``, which always does. After `shutdown` every operation throws `57P01`. A store
/// dropped without `shutdown` cancels its run task from `deinit`.
///
/// Entry points, by purpose:
/// - transactions: ``begin(_:readOnly:)``, ``begin(_:readOnly:deferrable:lockTimeout:)`` and the contract's
///   `transaction { }` (retries `40001`/`40P01`); each transaction holds one pooled connection until it ends;
/// - single-key operations, each one SQL statement in its own implicit transaction: ``get(_:)``, ``put(_:_:)``,
///   ``put(_:_:ifVersion:)``, ``put(_:_:ifAbsent:)``, ``delete(_:)``, ``delete(_:ifVersion:)``, ``increment(_:by:)``;
/// - observation for tests and tools: ``waitUntilWaiting(_:on:)``.
///
/// What differs from the embedded engine (details in DESIGN.md): read uncommitted runs as read committed; an error
/// reported by PostgreSQL aborts the whole transaction (`25P02` afterwards, until `rollback()` or `rollback(to:)`);
/// `lock` on an absent key locks nothing; a deadlock is found after `deadlock_timeout` (1 s by default) and the
/// waiter that checks first is the victim; versions come from a sequence (unique and increasing per key, but not in
/// commit order across keys); connection loss is `08006`.
public final class PostgresStore: KeyValueStore, Sendable {
    public typealias Transaction = PostgresTransaction

    /// The schema version this build creates and accepts (the `schema_version` row of `isokv_meta`).
    public static let schemaVersion: Int64 = 1

    public let configuration: Configuration
    /// The pool. Used only while ``runTask`` runs.
    let client: PostgresClient
    /// Runs `client.run()`; cancelled by ``shutdown()`` (or `deinit`).
    private let runTask: Task<Void, Never>

    struct State {
        /// Set by ``shutdown()``; operations then throw `57P01`.
        var isShutdown = false
        /// The last transaction id handed out (ids start at 1; unique for the store's lifetime).
        var lastTransactionID: UInt64 = 0
        /// PostgreSQL backend process id of each pooled connection seen so far, by postgres-nio connection id.
        var backendPIDs: [PostgresConnection.ID: Int32] = [:]
        /// Open transactions → the backend process id serving them (for ``waitUntilWaiting(_:on:)``).
        var openTransactions: [UInt64: Int32] = [:]
    }
    let state = Locked(State())

    /// Connects (through the pool), creates the schema if missing and checks its version.
    ///
    /// Throws `22023` for a bad configuration, `0A000` if the schema was made by an unknown IsoKV schema version,
    /// `42P01` if it is missing and ``Configuration/createSchema`` is false, `08006` if PostgreSQL cannot be
    /// reached within ``Configuration/connectionTimeout``.
    ///
    /// ```swift
    /// let store = try await PostgresStore(configuration: try .init(url: url))
    /// defer { Task { await store.shutdown() } }   // or use PostgresStore.withStore
    /// ```
    public init(configuration: Configuration) async throws {
        try configuration.validate()
        self.configuration = configuration
        let client = PostgresClient(configuration: configuration.clientWithSessionSettings)
        self.client = client
        self.runTask = Task { await client.run() }
        do {
            try await prepareSchema()
        } catch {
            await shutdown()
            throw error
        }
    }

    deinit {
        runTask.cancel()
    }

    /// Ends the pool's run task and waits for it; its connections are closed. Idempotent. Transactions still open
    /// fail with `08006` or `57P01` on their next statement.
    public func shutdown() async {
        state.withLock { $0.isShutdown = true }
        runTask.cancel()
        await runTask.value
    }

    /// Opens a store, runs `body` with it and shuts it down, also when `body` throws.
    ///
    /// ```swift
    /// try await PostgresStore.withStore(configuration: config) { store in
    ///     try await store.put("greeting", "hello")
    /// }
    /// ```
    public static func withStore<R>(
        configuration: Configuration,
        _ body: (PostgresStore) async throws -> sending R
    ) async throws -> sending R {
        let store = try await PostgresStore(configuration: configuration)
        do {
            let result = try await body(store)
            await store.shutdown()
            return result
        } catch {
            await store.shutdown()
            throw error
        }
    }

    // MARK: - Connections

    func checkOpen() throws {
        if state.withLock({ $0.isShutdown }) {
            throw IsoKVError(.databaseClosed, "the PostgreSQL store was shut down")
        }
    }

    /// Leases a connection for one transaction or one statement (`08006` after ``Configuration/connectionTimeout``).
    func lease() async throws -> HeldConnection {
        try checkOpen()
        return try await HeldConnection.lease(from: client, timeout: configuration.connectionTimeout)
    }

    /// Runs `body` on a leased connection outside any transaction (each statement commits on its own) and gives
    /// the connection back. Errors are mapped to ``IsoKVError`` with `key`.
    func withConnection<R>(key: Bytes? = nil, _ body: (PostgresConnection) async throws -> R) async throws -> R {
        let held = try await lease()
        defer { held.release(.clean) }
        do {
            try held.checkOpen()
            return try await body(held.connection)
        } catch {
            throw PostgresErrorMapping.map(error, key: key)
        }
    }

    /// The backend process id serving `connection`, asked once per connection.
    func backendPID(of connection: PostgresConnection) async throws -> Int32 {
        if let pid = state.withLock({ $0.backendPIDs[connection.id] }) { return pid }
        var pid: Int32 = 0
        for try await row in try await connection.query("SELECT pg_backend_pid()", logger: HeldConnection.logger) {
            pid = try row.decode(Int32.self)
        }
        let id = connection.id
        state.withLock { $0.backendPIDs[id] = pid }
        connection.closeFuture.whenComplete { [state] _ in state.withLock { _ = $0.backendPIDs.removeValue(forKey: id) }
        }
        return pid
    }

    func newTransactionID() -> UInt64 {
        state.withLock { s in
            s.lastTransactionID += 1; return s.lastTransactionID
        }
    }

    func transactionEnded(_ id: UInt64) {
        state.withLock { _ = $0.openTransactions.removeValue(forKey: id) }
    }
}
