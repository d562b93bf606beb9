import CoreMetrics
import IsoKVCore
import IsoKVSync
import Metrics
import Prometheus
import Synchronization

/// The server's metrics, recorded through swift-metrics into this server's own Prometheus registry (one per
/// application, so that tests and several servers in one process never share counters; nothing is bootstrapped
/// globally) and served by `GET /metrics` in the Prometheus text format.
///
/// | metric | type | labels | source |
/// |---|---|---|---|
/// | `isokv_http_requests_total` | counter | `route` (template), `method`, `status` | every response |
/// | `isokv_http_request_duration_seconds` | histogram | `route`, `method` | every response |
/// | `isokv_commits_total` | counter | `kind` (`single`, `batch`, `interactive`, `queue`) | commits the server made |
/// | `isokv_aborts_total` | counter | `cause` | the engine's `statistics().aborts`, at scrape |
/// | `isokv_lock_waits_total`, `isokv_lock_wait_microseconds_total` | counter | | `statistics().lockWaits` |
/// | `isokv_open_transactions` / `isokv_open_cursors` | gauge | | the transaction registry |
/// | `isokv_wal_appends_total`, `_batches_total`, `_fsyncs_total`, `_bytes_written_total` | counter | | `statistics().wal` |
/// | `isokv_wal_group_commit_batch_size` | gauge | | appends ÷ batches since open |
/// | `isokv_ssi_active_transactions`, `isokv_deferrable_waiting` | gauge | | `statistics().serializable` |
/// | `isokv_keys`, `isokv_versions` | gauge | | `statistics()` |
///
/// The rows from `statistics()` exist only when the store is the embedded engine (``ServerBackend/metricsSample()``).
/// `isokv_aborts_total{cause="lock_not_available"}` counts the lock requests that failed (NOWAIT, lock timeout);
/// `isokv_lock_waits_total` the ones that waited.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    /// Per (route, method, status) counters with their (route, method) timers, created on first use.
    private let recorders = Locked<[String: RequestRecorder]>([:])
    private let requestTimers = Locked<[String: CoreMetrics.Timer]>([:])
    private let commits: [String: CoreMetrics.Counter]
    private let openTransactions: Prometheus.Gauge
    private let openCursors: Prometheus.Gauge
    /// Responses the GET fast path wrote itself (tests check that it answered; not exported).
    let fastGets = Atomic<Int>(0)
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
        recorder(route: route, method: method, status: status).record(nanoseconds: nanoseconds)
    }

    /// The counter and timer of one (route, method, status): created on first use, then one dictionary lookup.
    /// The GET fast path keeps its recorder, so it does not even look it up.
    func recorder(route: String, method: String, status: Int) -> RequestRecorder {
        let key = "\(route) \(method) \(status)"
        if let existing = recorders.withLock({ $0[key] }) { return existing }
        let timerKey = "\(route) \(method)"
        let timer = requestTimers.withLock { t in
            if let existing = t[timerKey] { return existing }
            let made = CoreMetrics.Timer(
                label: "isokv_http_request_duration_seconds",
                dimensions: [("route", route), ("method", method)], factory: factory)
            t[timerKey] = made
            return made
        }
        return recorders.withLock { r in
            if let existing = r[key] { return existing }
            let made = RequestRecorder(
                counter: CoreMetrics.Counter(
                    label: "isokv_http_requests_total",
                    dimensions: [("route", route), ("method", method), ("status", String(status))],
                    factory: factory),
                timer: timer)
            r[key] = made
            return made
        }
    }

    /// `isokv_http_requests_total` and `isokv_http_request_duration_seconds` of one (route, method, status).
    struct RequestRecorder: Sendable {
        let counter: CoreMetrics.Counter
        let timer: CoreMetrics.Timer

        func record(nanoseconds: UInt64) {
            counter.increment()
            timer.recordNanoseconds(Int64(clamping: nanoseconds))
        }

        func record(since start: ContinuousClock.Instant) {
            let elapsed = ContinuousClock.now - start
            record(
                nanoseconds: UInt64(max(0, elapsed.components.seconds)) * 1_000_000_000
                    + UInt64(max(0, elapsed.components.attoseconds / 1_000_000_000)))
        }
    }

    func commit(_ kind: String) { commits[kind]?.increment() }

    func setOpen(interactive: Int, cursors: Int) {
        openTransactions.set(Double(interactive))
        openCursors.set(Double(cursors))
    }

    /// Brings the store's figures up to date (`sample`, from ``ServerBackend/metricsSample()``; for the engine one
    /// `statistics()` call: O(keys), fine for a scrape) and returns the whole registry in the Prometheus text format.
    func scrape(_ sample: BackendMetricsSample?) -> [UInt8] {
        for c in sample?.counters ?? [] { publishCounter(c.name, help: c.help, labels: c.labels, c.value) }
        for g in sample?.gauges ?? [] {
            registry.makeGauge(descriptor: Self.describe(g.name, g.help)).set(g.value)
        }
        return registry.emitToBuffer()
    }

    static func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private func publishCounter(_ name: String, help: String, labels: [(String, String)], _ value: Int) {
        let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        let delta = lastPublished.withLock { last -> Int in
            let d = value - (last[key] ?? 0)
            if d > 0 { last[key] = value }
            return d
        }
        let descriptor = Self.describe(name, help)
        let counter =
            labels.isEmpty
            ? registry.makeCounter(descriptor: descriptor)
            : registry.makeCounter(descriptor: descriptor, labels: labels)
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }
}
