import Foundation
import IsoKV
import IsoKVPostgres
import IsoKVWorkloads

/// `isokv bench engine --backend postgres://…`: the same workloads through the same store contract on the embedded
/// engine and on PostgreSQL, in one run, with the ratio. The rows of both backends are interleaved slice by slice (as
/// every bench row is), so drift in the machine's load affects both alike.
extension BenchEngine {
    /// The workloads the comparison runs (the point operations and the hot counter).
    static let comparisonWorkloads = ["ycsb-a", "ycsb-b", "ycsb-c", "counter"]

    func runComparison(url: String) async throws {
        var config = try PostgresStore.Configuration(url: url)
        if !url.contains("schema=") { config.schema = "isokv_bench" }  // never the application's default schema
        config.client.options.maximumConnections = threads + 2
        let data = Dataset(keyCount: keys, valueSize: valueSize, distribution: distribution.chooserDistribution)
        let db = map.makeDatabase()
        try await data.load(into: db)
        for k in data.keys { _ = try await db.get(k) }  // let the directory promote its new keys
        let schema = config.schema
        try await PostgresStore.withStore(configuration: config) { pg in
            try await data.load(into: pg)
            let harness = Harness(tasks: threads)
            var rows: [BenchRow] = []
            for name in Self.comparisonWorkloads {
                rows.append(
                    harness.row(
                        "\(name) embedded", Workload<Database>.named(name)!,
                        on: WorkloadContext(store: db, data: data, isolation: isolation)))
                rows.append(
                    harness.row(
                        "\(name) postgresql", Workload<PostgresStore>.named(name)!,
                        on: WorkloadContext(store: pg, data: data, isolation: isolation)))
            }
            try await Harness.warmUp(rows, for: .milliseconds(Int64(warmup * 1000)))
            let results = try await Harness.interleave(
                rows, perRow: .milliseconds(Int64(seconds * 1000)), slices: Self.slices)

            var report = Report<EngineComparisonRecord>(
                title: "isokv bench engine: embedded engine vs PostgreSQL (same workloads, same contract, one run)",
                parameters: [
                    ("isolation", isolation.rawValue), ("threads", "\(threads)"), ("keys", "\(keys)"),
                    ("seconds per row", "\(seconds)"), ("value size", "\(valueSize)"),
                    ("distribution", distribution.rawValue), ("interleaved slices per row", "\(Self.slices)"),
                    ("postgresql", "\(config.client.host ?? "?"):\(config.client.port ?? 0), schema \(schema)")
                ],
                columns: [
                    "workload", "embedded ops/s", "postgresql ops/s", "embedded ÷ postgresql", "embedded p50",
                    "postgresql p50", "postgresql p99", "postgresql aborts (retries)"
                ])
            for (i, name) in Self.comparisonWorkloads.enumerated() {
                let e = results[2 * i]
                let p = results[2 * i + 1]
                let ratio = e.opsPerSecond / p.opsPerSecond
                let aborts =
                    p.counters.aborts.isEmpty
                    ? "-"
                    : p.counters.aborts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
                        .joined(separator: ", ") + " (\(p.counters.retries))"
                report.add(
                    [
                        name, Figure.rate(e.opsPerSecond), Figure.rate(p.opsPerSecond), Figure.ratio(ratio),
                        Figure.duration(nanoseconds: e.p50), Figure.duration(nanoseconds: p.p50),
                        Figure.duration(nanoseconds: p.p99), aborts
                    ],
                    EngineComparisonRecord(
                        workload: name, isolation: isolation.rawValue, embeddedOpsPerSecond: e.opsPerSecond,
                        postgresOpsPerSecond: p.opsPerSecond, ratio: ratio, embeddedP50Nanoseconds: e.p50,
                        postgresP50Nanoseconds: p.p50, postgresP99Nanoseconds: p.p99,
                        postgresAborts: p.counters.aborts))
            }
            report.notes.append(
                "Each operation is its own transaction at \(isolation.rawValue), retried on 40001/40P01; on PostgreSQL "
                    + "every statement is a network round trip (begin, statements, commit) on a pooled connection.")
            report.notes.append(
                "The benchmark data stays in schema \(schema) of that database (drop it with "
                    + "DROP SCHEMA \(schema) CASCADE).")
            print(try report.render(format))
        }
    }
}

/// One row of the comparison's JSON output.
struct EngineComparisonRecord: Encodable {
    var workload: String
    var isolation: String
    var embeddedOpsPerSecond: Double
    var postgresOpsPerSecond: Double
    /// Embedded throughput ÷ PostgreSQL throughput.
    var ratio: Double
    var embeddedP50Nanoseconds: Double
    var postgresP50Nanoseconds: Double
    var postgresP99Nanoseconds: Double
    /// Failed attempts on PostgreSQL by SQLSTATE.
    var postgresAborts: [String: Int]
}
