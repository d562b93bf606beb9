import CoreMetrics
import IsoKV
import IsoKVCore
import IsoKVSync
import Metrics
import Prometheus

/// The server's metrics, recorded through swift-metrics into this server's own Prometheus registry (one per
/// application, so that tests and several servers in one process never share counters; nothing is bootstrapped
/// globally) and served by `GET /metrics` in the Prometheus text format.
///
/// | metric | type | labels | source |
/// |---|---|---|---|
/// | `isokv_http_requests_total` | counter | `route` (template), `method`, `status` | every response |
/// | `isokv_http_request_duration_seconds` | histogram | `route`, `method` | every response |
/// | `isokv_commits_total` | counter | `kind` (`single`, `batch`, `interactive`, `queue`) | commits the server made |
/// | `isokv_aborts_total` | counter | `cause` | `db.statistics().aborts`, at scrape |
/// | `isokv_open_transactions` / `isokv_open_cursors` | gauge | | the transaction registry |
/// | `isokv_wal_appends_total`, `_batches_total`, `_fsyncs_total`, `_bytes_written_total` | counter | | `statistics().wal` |
/// | `isokv_wal_group_commit_batch_size` | gauge | | appends ÷ batches since open |
/// | `isokv_ssi_active_transactions`, `isokv_deferrable_waiting` | gauge | | `statistics().serializable` |
/// | `isokv_keys`, `isokv_versions` | gauge | | `statistics()` |
///
/// Lock waits are not counted by the engine; `isokv_aborts_total{cause="lock_not_available"}` counts the lock
/// requests that failed (NOWAIT, lock timeout).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    /// Per (route, method, status) counters and per (route, method) timers, created on first use.
    private let requestCounters = Locked<[String: CoreMetrics.Counter]>([:])
    private let requestTimers = Locked<[String: CoreMetrics.Timer]>([:])
    private let commits: [String: CoreMetrics.Counter]
    private let openTransactions: Prometheus.Gauge
    private let openCursors: Prometheus.Gauge
    /// Engine counters as last published, so that a scrape adds only the difference.
    private let lastPublished = Locked<[String: Int]>([:])

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["isokv_http_request_duration_seconds"] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5)
        ]
        self.factory = factory
        var commits: [String: CoreMetrics.Counter] = [:]
        for kind in ["single", "batch", "interactive", "queue"] {
            commits[kind] = CoreMetrics.Counter(
                label: "isokv_commits_total", dimensions: [("kind", kind)], factory: factory)
        }
        self.commits = commits
        openTransactions = registry.makeGauge(
            descriptor: Self.describe("isokv_open_transactions", "interactive transactions open now"))
        openCursors = registry.makeGauge(descriptor: Self.describe("isokv_open_cursors", "scan cursors open now"))
    }

    func recordRequest(route: String, method: String, status: Int, nanoseconds: UInt64) {
        let key = "\(route) \(method) \(status)"
        let counter = requestCounters.withLock { c in
            if let existing = c[key] { return existing }
            let made = CoreMetrics.Counter(
                label: "isokv_http_requests_total",
                dimensions: [("route", route), ("method", method), ("status", String(status))],
                factory: factory)
            c[key] = made
            return made
        }
        counter.increment()
        let timerKey = "\(route) \(method)"
        let timer = requestTimers.withLock { t in
            if let existing = t[timerKey] { return existing }
            let made = CoreMetrics.Timer(
                label: "isokv_http_request_duration_seconds",
                dimensions: [("route", route), ("method", method)], factory: factory)
            t[timerKey] = made
            return made
        }
        timer.recordNanoseconds(Int64(clamping: nanoseconds))
    }

    func commit(_ kind: String) { commits[kind]?.increment() }

    func setOpen(interactive: Int, cursors: Int) {
        openTransactions.set(Double(interactive))
        openCursors.set(Double(cursors))
    }

    /// Brings the engine-derived metrics up to date (one `db.statistics()` call: O(keys), fine for a scrape) and
    /// returns the whole registry in the Prometheus text format.
    func scrape(_ db: Database) -> [UInt8] {
        let s = db.statistics()
        let a = s.aborts
        publishCounter("isokv_aborts_total", labels: [("cause", "first_updater_wins")], a.firstUpdaterWins)
        publishCounter("isokv_aborts_total", labels: [("cause", "rw_conflict_on_read")], a.rwConflictOnRead)
        publishCounter("isokv_aborts_total", labels: [("cause", "rw_conflict_on_write")], a.rwConflictOnWrite)
        publishCounter("isokv_aborts_total", labels: [("cause", "canceled_pivot")], a.canceledPivots)
        publishCounter("isokv_aborts_total", labels: [("cause", "deadlock")], a.deadlocks)
        publishCounter("isokv_aborts_total", labels: [("cause", "lock_not_available")], a.lockNotAvailable)
        if let wal = s.wal {
            publishCounter("isokv_wal_appends_total", labels: [], Int(wal.appends))
            publishCounter("isokv_wal_batches_total", labels: [], Int(wal.batches))
            publishCounter("isokv_wal_fsyncs_total", labels: [], Int(wal.syncs))
            publishCounter("isokv_wal_bytes_written_total", labels: [], Int(wal.bytesWritten))
            registry.makeGauge(
                descriptor: Self.describe(
                    "isokv_wal_group_commit_batch_size", "WAL records per write batch since open (group commit)")
            )
            .set(wal.batches == 0 ? 0 : Double(wal.appends) / Double(wal.batches))
        }
        registry.makeGauge(
            descriptor: Self.describe("isokv_ssi_active_transactions", "tracked serializable transactions running")
        ).set(Double(s.serializable.active))
        registry.makeGauge(
            descriptor: Self.describe("isokv_deferrable_waiting", "deferrable transactions waiting for a safe snapshot")
        ).set(Double(s.serializable.deferredWaiting))
        registry.makeGauge(
            descriptor: Self.describe("isokv_keys", "keys in the scan index (deleted keys not yet collected included)")
        ).set(Double(s.indexedKeys))
        registry.makeGauge(descriptor: Self.describe("isokv_versions", "committed versions retained")).set(
            Double(s.versions))
        return registry.emitToBuffer()
    }

    static func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    static let help: [String: String] = [
        "isokv_aborts_total": "aborts (40001, 40P01) and failed lock requests (55P03) by cause, from the engine",
        "isokv_wal_appends_total": "WAL records appended",
        "isokv_wal_batches_total": "WAL write batches (group commits)",
        "isokv_wal_fsyncs_total": "fdatasync calls on WAL segments",
        "isokv_wal_bytes_written_total": "bytes written to WAL segments"
    ]

    private func publishCounter(_ name: String, labels: [(String, String)], _ value: Int) {
        let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        let delta = lastPublished.withLock { last -> Int in
            let d = value - (last[key] ?? 0)
            if d > 0 { last[key] = value }
            return d
        }
        let descriptor = Self.describe(name, Self.help[name] ?? "")
        let counter =
            labels.isEmpty
            ? registry.makeCounter(descriptor: descriptor)
            : registry.makeCounter(descriptor: descriptor, labels: labels)
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }
}
