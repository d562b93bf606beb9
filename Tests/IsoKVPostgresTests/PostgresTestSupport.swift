import Foundation
import IsoKVCore
import IsoKVPostgres
import PostgresNIO
import Testing

/// Where the tests find PostgreSQL: `ISOKV_POSTGRES_URL` (set by `scripts/pg-test-cluster run -- …`). Without it the
/// PostgreSQL suites are skipped, each with this reason shown. `scripts/test` (what CI runs) always starts a cluster
/// for its PostgreSQL step and fails that step if any PostgreSQL test was skipped, so CI never passes without them.
enum PostgresTestEnvironment {
    static let url: String? = {
        let v = ProcessInfo.processInfo.environment["ISOKV_POSTGRES_URL"]
        return v?.isEmpty == false ? v : nil
    }()
    static var isAvailable: Bool { url != nil }
    static let skipReason: Comment =
        "ISOKV_POSTGRES_URL is not set: run `scripts/pg-test-cluster run -- swift test --filter Postgres` (scripts/test does)"

    /// The cluster script and directory when the cluster was started by `scripts/pg-test-cluster` (the restart test
    /// needs them to start a cluster of its own).
    static var clusterScript: String? { ProcessInfo.processInfo.environment["ISOKV_PG_CLUSTER_CTL"] }

    /// A schema name no other test uses.
    static func freshSchema() -> String {
        "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
    }

    static func configuration(url: String? = nil, schema: String = freshSchema()) throws -> PostgresStore.Configuration
    {
        var config = try PostgresStore.Configuration(url: url ?? self.url!)
        config.schema = schema
        config.client.options.maximumConnections = 12
        config.connectionTimeout = .seconds(20)
        return config
    }

    /// Runs `body` with a store on a fresh schema, then shuts the store down and drops the schema.
    static func withStore<R>(
        _ adjust: (inout PostgresStore.Configuration) -> Void = { _ in },
        _ body: (PostgresStore) async throws -> R
    ) async throws -> R {
        var config = try configuration()
        adjust(&config)
        let store = try await PostgresStore(configuration: config)
        do {
            let result = try await body(store)
            await store.shutdown()
            try await dropSchema(config.schema)
            return result
        } catch {
            await store.shutdown()
            try? await dropSchema(config.schema)
            throw error
        }
    }

    /// A direct connection (no pool), for statements the store does not offer.
    @discardableResult
    static func withRawConnection<R>(url: String? = nil, _ body: (PostgresConnection) async throws -> R) async throws
        -> R
    {
        let config = try PostgresStore.Configuration(url: url ?? self.url!)
        let c = config.client
        let connection = try await PostgresConnection.connect(
            configuration: .init(
                host: c.host!, port: c.port!, username: c.username, password: c.password,
                database: c.database, tls: .disable),
            id: 1, logger: Logger(label: "isokv.tests"))
        do {
            let r = try await body(connection)
            try await connection.close()
            return r
        } catch {
            try? await connection.close()
            throw error
        }
    }

    static func dropSchema(_ schema: String) async throws {
        try await withRawConnection { c in
            try await c.query(
                PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE"), logger: Logger(label: "t"))
        }
    }
}

/// The error `body` throws, as an ``IsoKVError`` (nil if it throws nothing; a test failure if it throws something else).
func isoKVError(_ body: () async throws -> Void) async -> IsoKVError? {
    do {
        try await body()
        return nil
    } catch let e as IsoKVError {
        return e
    } catch {
        Issue.record("expected an IsoKVError, got \(error)")
        return nil
    }
}

/// Runs a program (the cluster script) without blocking a cooperative thread: suspends until it exits. Returns its
/// stdout, which goes through a file (a pipe would stay open in the PostgreSQL server the script leaves running).
/// Uses posix_spawn and waitpid on a thread of its own: Foundation's `Process` left the child a zombie in this
/// process (its exit was never noticed).
@discardableResult
func runProgram(_ path: String, _ arguments: [String]) async throws -> String {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("isokv-run-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: output) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
    if rc != 0 { throw IsoKVError(.invalidInput, "cannot start \(path): errno \(rc)") }
    let child = pid
    let status: Int32 = await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(child, &status, 0) == -1 && errno == EINTR {}
            continuation.resume(returning: status)
        }
    }
    let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
    if status != 0 { throw IsoKVError(.invalidInput, "\(path) \(arguments) failed (wait status \(status))") }
    return text
}
