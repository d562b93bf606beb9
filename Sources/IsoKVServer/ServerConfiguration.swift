/// Everything `buildApplication(configuration:database:)` needs besides the database. Every limit is explicit here
/// and documented in DESIGN.md ("Limits"); exceeding one is a typed error (`54000` → 413, `22023` → 400, `53300`
/// → 503), never a crash.
public struct ServerConfiguration: Sendable {
    /// Address to listen on (default `127.0.0.1`). `isokv serve` refuses a non-loopback address without a token.
    public var host: String = "127.0.0.1"
    /// Port (default 7070; 0 picks a free one).
    public var port: Int = 7070
    /// The bearer token every route but `/healthz` and `/readyz` requires; nil: no authentication.
    public var token: String?
    public var limits = ServerLimits()
    /// Name in the `Server` header and logs.
    public var serverName = "isokv"
    /// How long the server keeps serving after SIGTERM with `/readyz` already 503 before it stops accepting
    /// connections, so that a load balancer notices first (default 0: stop at once).
    public var drainDelay: Duration = .zero
    /// Answer plain `GET /v1/kv/{key}` hits on the connection's event loop, below the router (DESIGN.md, "GET fast
    /// path"; the same response bytes). False: every request goes through the router.
    public var fastPath = true

    public init(
        host: String = "127.0.0.1", port: Int = 7070, token: String? = nil, limits: ServerLimits = ServerLimits()
    ) {
        self.host = host
        self.port = port
        self.token = token
        self.limits = limits
    }
}

/// The server's limits (defaults from the reference design's table).
public struct ServerLimits: Sendable, Hashable {
    /// Longest key in bytes (also the engine's `Limits.maxKeySize`; the smaller of the two applies).
    public var maxKeyBytes = 4096
    /// Longest value in bytes.
    public var maxValueBytes = 1 << 20
    /// Largest request body in bytes.
    public var maxBodyBytes = 2 << 20
    /// Most compares plus ops in one `POST /v1/txn`, and most ops in one `…/ops` call.
    public var maxOps = 128
    /// Default and largest `limit` of a scan page.
    public var defaultScanLimit = 100
    public var maxScanLimit = 1000
    /// Most interactive transactions open at once (`53300` beyond).
    public var maxOpenTransactions = 256
    /// Most scan cursors open at once (`53300` beyond).
    public var maxOpenCursors = 256
    /// Interactive transaction idle timeout: default and largest accepted `idle_timeout_ms`.
    public var defaultIdleTimeout: Duration = .seconds(10)
    public var maxIdleTimeout: Duration = .seconds(60)
    /// Interactive transaction lifetime cap: default and largest accepted `timeout_ms`.
    public var defaultLifetime: Duration = .seconds(60)
    public var maxLifetime: Duration = .seconds(300)
    /// Largest `lock_timeout_ms` (a blocking lock wait inside an interactive transaction).
    public var maxLockTimeout: Duration = .seconds(300)
    /// Writes one interactive transaction may hold: distinct keys and value bytes.
    public var maxTransactionWrites = 10_000
    public var maxTransactionWriteBytes = 8 << 20
    /// How long a scan cursor's snapshot lives without being used, and at most.
    public var cursorIdleTimeout: Duration = .seconds(30)
    public var cursorLifetime: Duration = .seconds(300)
    /// How long a finished transaction's outcome (tombstone) is kept, and how many are kept at most (oldest first out).
    public var tombstoneLifetime: Duration = .seconds(600)
    public var maxTombstones = 10_000
    /// Queue claims: most items per claim, longest `wait_ms`, default and longest lease.
    public var maxClaimItems = 32
    public var maxClaimWait: Duration = .seconds(20)
    public var defaultLease: Duration = .seconds(30)
    public var maxLease: Duration = .seconds(12 * 3600)
    /// How often the reaper looks for idle or expired transactions and cursors.
    public var reaperInterval: Duration = .milliseconds(100)
    /// Internal retries of `40001`/`40P01` for one-shot writes and `POST /v1/txn` before the error is returned.
    public var internalRetries = 5

    public init() {}
}

extension Duration {
    var milliseconds: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}
