import IsoKVCore

/// What the server can use from its store beyond the store contract (`KeyValueStore`), each optional: a store
/// that does not conform is served through the contract alone (DESIGN.md, "Backends and their capabilities").
///
/// The embedded engine (`Database`) conforms in this module; `isokv serve --backend postgres://…` makes
/// `PostgresStore` conform in the CLI, so this module never depends on a database driver.
///
/// ```swift
/// extension MyStore: ServerBackend {
///     var backendName: String { "mystore" }
///     func closeForShutdown() async { await close() }
/// }
/// let server = try IsoKVServer(configuration: ServerConfiguration(), database: MyStore())
/// ```
public protocol ServerBackend: Sendable {
    /// A short name for logs and `/metrics` (`embedded`, `postgresql`).
    var backendName: String { get }

    /// Called once at shutdown, after every transaction has ended: flush and close (or release connections).
    nonisolated(nonsending) func closeForShutdown() async

    /// The newest commit number when the server starts, the first value of `IsoKV-Revision`; nil when the store
    /// numbers no commits (the server then starts from 0 and reports the largest version it has seen).
    func startingRevision() -> UInt64?

    /// True when a `58030` (storage failure) means the store refuses every commit until it is reopened: the
    /// server then answers `/readyz` with 503. False for a store that recovers by itself (a database server).
    var isFailStop: Bool { get }

    /// Figures for `/metrics` that only the store knows (aborts by cause, log writes, …); nil if it has none.
    func metricsSample() -> BackendMetricsSample?
}

extension ServerBackend {
    public func startingRevision() -> UInt64? { nil }
    public var isFailStop: Bool { false }
    public func metricsSample() -> BackendMetricsSample? { nil }
}

/// A store whose transactions report, at commit, the version every key they wrote now has (the engine: the
/// commit number, the same for every key). Without it the server reports no version for the writes of a batch
/// or an interactive transaction, and the commit's `revision` is the largest version the server has seen.
public protocol CommitVersionReporting: StoreTransaction {
    /// Commits; returns the version of the keys written (nil if the transaction wrote nothing).
    nonisolated(nonsending) func commitReportingVersion() async throws -> UInt64?
}

/// A store with serializable read-only deferrable transactions (`"deferrable": true` on `POST /v1/transactions`);
/// without it such a request gets `400 22023`.
public protocol DeferrableTransactions: KeyValueStore {
    nonisolated(nonsending) func begin(_ isolation: IsolationLevel, readOnly: Bool, deferrable: Bool) async throws
        -> Transaction
}

/// Store figures for one `/metrics` scrape: monotonic counters (the server publishes their increase) and gauges.
public struct BackendMetricsSample: Sendable {
    public struct Counter: Sendable {
        public var name: String
        public var help: String
        public var labels: [(String, String)]
        public var value: Int
        public init(_ name: String, help: String, labels: [(String, String)] = [], _ value: Int) {
            self.name = name
            self.help = help
            self.labels = labels
            self.value = value
        }
    }
    public struct Gauge: Sendable {
        public var name: String
        public var help: String
        public var value: Double
        public init(_ name: String, help: String, _ value: Double) {
            self.name = name
            self.help = help
            self.value = value
        }
    }
    public var counters: [Counter] = []
    public var gauges: [Gauge] = []
    public init(counters: [Counter] = [], gauges: [Gauge] = []) {
        self.counters = counters
        self.gauges = gauges
    }
}

/// Commits `tx`. Returns the version of its writes when the store reports it (``CommitVersionReporting``), and
/// whether the commit counts in `isokv_commits_total` (a commit that wrote, or any commit when the store does
/// not say).
nonisolated(nonsending) func commitReportingVersion(_ tx: any StoreTransaction) async throws -> (
    version: UInt64?, counts: Bool
) {
    if let reporting = tx as? any CommitVersionReporting {
        let version = try await reporting.commitReportingVersion()
        return (version, version != nil)
    }
    try await tx.commit()
    return (nil, true)
}
