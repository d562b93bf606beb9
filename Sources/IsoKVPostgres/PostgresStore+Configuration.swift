import Foundation
import IsoKVCore
import PostgresNIO

extension PostgresStore {
    /// How to reach PostgreSQL and how the store behaves there.
    ///
    /// ```swift
    /// var config = try PostgresStore.Configuration(url: "postgres://app@127.0.0.1:5432/appdb?schema=isokv")
    /// config.client.options.maximumConnections = 50          // the pool size
    /// config.lockTimeout = .seconds(2)                        // blocking row locks fail with 55P03 after 2 s
    /// let store = try await PostgresStore(configuration: config)
    /// ```
    public struct Configuration: Sendable {
        /// postgres-nio's client configuration: host, port, user, password, database, TLS, and the pool
        /// (`options.maximumConnections`, `options.minimumConnections`, idle timeout, keep-alive). The store adds its
        /// own startup parameters (`search_path`, `application_name`, `lock_timeout`) to `options`.
        public var client: PostgresClient.Configuration

        /// The PostgreSQL schema (namespace) holding the store's tables; created if missing. Several stores can
        /// share one database with different schemas. A lowercase identifier: letters, digits, `_`, at most 63.
        public var schema: String = "isokv"

        /// Create the schema, its tables and its sequence when they are missing (default). With false, a missing
        /// schema is an error (`42P01`), for deployments where migrations are run by someone else.
        public var createSchema: Bool = true

        /// How long a blocking row lock (a write, `lock`, a locking scan) may wait before failing with `55P03`
        /// (PostgreSQL's `lock_timeout`); nil waits without limit. ``PostgresStore/begin(_:readOnly:deferrable:lockTimeout:)``
        /// can override it per transaction.
        public var lockTimeout: Duration? = nil

        /// How long an operation may wait for a pooled connection (all connections busy, or PostgreSQL unreachable)
        /// before failing with `08006` (``IsoKVError/Code/connectionFailure``). Default 10 s.
        public var connectionTimeout: Duration = .seconds(10)

        /// Key, value, writes-per-transaction and scan limits, checked before any SQL is sent (same codes as the
        /// embedded engine: `22023`, `54000`).
        public var limits: Limits = Limits()

        /// A configuration from postgres-nio's client configuration.
        public init(client: PostgresClient.Configuration, schema: String = "isokv") {
            self.client = client
            self.schema = schema
        }

        /// A configuration from a URL: `postgres://user[:password]@host[:port][/database][?schema=NAME&sslmode=MODE]`
        /// (`postgresql://` too). `sslmode` is `disable` (the default), `prefer` or `require`; percent-escapes are
        /// decoded. Throws `22023` for anything else.
        ///
        /// ```swift
        /// let config = try PostgresStore.Configuration(url: "postgres://postgres@127.0.0.1:5432/postgres")
        /// ```
        public init(url: String) throws {
            guard let components = URLComponents(string: url),
                let scheme = components.scheme, scheme == "postgres" || scheme == "postgresql",
                let host = components.host, !host.isEmpty
            else {
                throw IsoKVError(.invalidInput, "not a postgres:// URL with a host: \(url)")
            }
            let user = components.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
            let password = components.password.flatMap { $0.removingPercentEncoding }
            let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
            let database = path.isEmpty ? nil : path.removingPercentEncoding
            var tls = PostgresClient.Configuration.TLS.disable
            var schema = "isokv"
            for item in components.queryItems ?? [] {
                switch (item.name, item.value ?? "") {
                case ("schema", let value): schema = value
                case ("sslmode", "disable"): tls = .disable
                case ("sslmode", "prefer"): tls = .prefer(.makeClientConfiguration())
                case ("sslmode", "require"): tls = .require(.makeClientConfiguration())
                case ("sslmode", let value):
                    throw IsoKVError(.invalidInput, "sslmode \(value) is not one of disable, prefer, require")
                case (let name, _):
                    throw IsoKVError(.invalidInput, "unknown parameter \(name) in the PostgreSQL URL")
                }
            }
            self.init(
                client: PostgresClient.Configuration(
                    host: host, port: components.port ?? 5432, username: user,
                    password: password, database: database, tls: tls),
                schema: schema)
        }

        /// Throws `22023` if the schema name is not a plain lowercase identifier or a duration is negative.
        func validate() throws {
            let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_")
            guard let first = schema.first, !first.isNumber, schema.count <= 63, schema.allSatisfy(allowed.contains)
            else {
                throw IsoKVError(
                    .invalidInput,
                    "schema name \"\(schema)\" is not a lowercase identifier ([a-z_][a-z0-9_]*, at most 63)")
            }
            if let lockTimeout, lockTimeout < .zero {
                throw IsoKVError(.invalidInput, "lockTimeout must not be negative")
            }
            if connectionTimeout <= .zero {
                throw IsoKVError(.invalidInput, "connectionTimeout must be positive")
            }
        }

        /// The client configuration with the store's startup parameters added.
        var clientWithSessionSettings: PostgresClient.Configuration {
            var c = client
            c.options.additionalStartupParameters.append(("search_path", schema))
            c.options.additionalStartupParameters.append(("application_name", "isokv"))
            if let lockTimeout {
                c.options.additionalStartupParameters.append(("lock_timeout", Self.milliseconds(lockTimeout)))
            }
            return c
        }

        /// A duration as PostgreSQL's time-interval text in whole milliseconds, rounded up (`0` would mean "no limit").
        static func milliseconds(_ d: Duration) -> String {
            let (s, atto) = d.components
            let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
            return "\(max(1, ms))ms"
        }
    }
}
