import ArgumentParser
import ConcurrentMaps
import Foundation
import IsoKV
import IsoKVWorkloads

/// `isokv bench engine`: the MVCC engine under the workloads of `IsoKVWorkloads`, next to the raw concurrent map
/// doing the same point reads in the same run (the in-memory limit the engine's read path is measured against).
///
/// Rows: `raw map load` (the baseline: `map.load` on the same keys, the same map type as the engine's directory;
/// with the default `chain-table` directory, which maps keys to chains only, the read-mostly map of byte strings),
/// `db.get` (single-key read, no transaction), `tx get (snapshot, ro)` (one read-only `.snapshot` transaction per
/// read: begin, get, commit), `db.read get (sync)` (one synchronous `Database.read` snapshot per read: the same
/// reads without a transaction object or an async call), `db.withSnapshot get (async)` (one `Database.withSnapshot`
/// per read: the same snapshot lent to an async body, one async call per read), then the chosen workload at the chosen isolation level, each operation its own
/// transaction, retried on `40001`/`40P01` (counted by cause through the retry policy's observer). Everything but the
/// raw map row and the engine's statistics comes from `IsoKVWorkloads` (workloads, dataset, harness, histograms).
struct BenchEngine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Benchmark the MVCC engine (YCSB-style workloads) against the raw map's point reads.",
        discussion: """
            Workloads: \(Workload<Database>.all.map { "\($0.name) (\($0.description))" }.joined(separator: ", ")). \
            With --isolation serializable the workload also runs at snapshot first (same database), and the notes \
            give the serializable/snapshot throughput ratio, both abort rates and the serializable aborts by cause. \
            Rows are measured in \(slices) interleaved slices each, after a warm-up of every row. \
            Engine rows: each operation is an async call, latency sampled on one operation in eight (HdrHistogram, \
            3 significant digits). The raw map row calls map.load in a tight synchronous loop (no async call), \
            latency = mean of groups of 8 loads.
            """
    )

    @Option(help: ArgumentHelp(Workload<Database>.all.map(\.name).joined(separator: " | ")))
    var workload: String = "ycsb-b"
    @Option(help: "read-uncommitted | read-committed | snapshot | serializable") var isolation: IsolationLevel =
        .snapshot
    @Option(help: "Concurrent tasks.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Keys loaded before the run.") var keys: Int = 100_000
    @Option(help: "Seconds per measured row.") var seconds: Double = 2
    @Option(help: "Warm-up seconds per row, before the measured slices.") var warmup: Double = 0.1
    @Option(help: "Value size in bytes.") var valueSize: Int = 100
    @Option(help: "zipfian (θ = 0.99, scrambled) | uniform") var distribution: KeyDistribution = .zipfian
    @Option(
        help:
            "Key directory: chain-table (the engine's default; baseline: read-mostly) | read-mostly | adaptive | hash-trie | sharded | mutex"
    )
    var map: DirectoryMap = .chainTable
    @Option(help: "table | json") var format: OutputFormat = .table
    @Flag(
        help: ArgumentHelp(
            "Keep one read-only snapshot transaction open through every row (as a backup or a long report would): "
                + "it holds every version written meanwhile, so memory grows with the writes of the run"))
    var holdSnapshot = false
    @Option(
        help: ArgumentHelp(
            "postgres://user@host:port/db[?schema=NAME]: run ycsb-a, ycsb-b, ycsb-c and counter on the embedded "
                + "engine and on this PostgreSQL in one run, with the ratio (--workload is then ignored; data goes "
                + "to schema isokv_bench unless the URL names one)"))
    var backend: String?

    func validate() throws {
        guard Workload<Database>.named(workload) != nil else {
            throw ValidationError(
                "unknown workload '\(workload)'; one of: "
                    + Workload<Database>.all.map(\.name).joined(separator: ", "))
        }
        guard threads >= 1, threads <= 1024 else { throw ValidationError("--threads must be in 1...1024") }
        guard keys >= 2, keys <= 50_000_000 else { throw ValidationError("--keys must be in 2...50000000") }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        guard warmup >= 0, warmup <= 60 else { throw ValidationError("--warmup must be in [0, 60]") }
        guard valueSize >= 0, valueSize <= 1 << 20 else { throw ValidationError("--value-size must be in 0...1048576") }
        if holdSnapshot && backend != nil {
            throw ValidationError("--hold-snapshot runs on the embedded engine only, not with --backend")
        }
    }

    /// Interleaved slices per row (see `Harness.interleave`).
    static let slices = 5

    /// The index of the chosen workload's row (after the raw map, `db.get`, `tx get`, `db.read get` and
    /// `db.withSnapshot get`).
    static let workloadRow = 5

    /// The name of the ycsb-e row whose scans use `Database.read` (after the workload rows).
    static let ycsbEReadRow = "ycsb-e, db.read forEach (sync)"
    /// The name of the ycsb-e row whose scans use `Database.withSnapshot` (last).
    static let ycsbEAsyncSnapshotRow = "ycsb-e, db.withSnapshot forEach (async)"

    /// ycsb-e with each scan in one synchronous `Database.read` snapshot, its rows visited in place
    /// (`ReadSnapshot.forEach`: no result array, no reference count; each value's first byte is read, as the LMDB
    /// peer's cursor does), the inserts as in ycsb-e. A row after the workload's when the workload is ycsb-e.
    static let ycsbEWithReadSnapshots = Workload<Database>.ycsbE(
        name: "ycsb-e", description: "ycsb-e, each scan a synchronous Database.read visiting its rows in place"
    ) { context, w, range, limit in
        let (rows, digest) = try context.store.read { try visitFirstBytes($0, range, limit) }
        w.counters.valueDigest ^= digest
        return rows
    }

    /// ycsb-e with each scan in one `Database.withSnapshot` (an async call per scan), its rows visited in place as
    /// in ``ycsbEWithReadSnapshots``. The last row when the workload is ycsb-e.
    static let ycsbEWithAsyncSnapshots = Workload<Database>.ycsbE(
        name: "ycsb-e", description: "ycsb-e, each scan a Database.withSnapshot visiting its rows in place"
    ) { context, w, range, limit in
        let (rows, digest) = try await context.store.withSnapshot { try visitFirstBytes($0, range, limit) }
        w.counters.valueDigest ^= digest
        return rows
    }

    /// Visits up to `limit` rows of `range` in place, reading each value's first byte (as the LMDB peer does);
    /// returns the rows visited and the XOR of those bytes.
    @inline(__always)
    static func visitFirstBytes(
        _ snapshot: borrowing ReadSnapshot, _ range: KeyRange, _ limit: Int
    ) throws -> (rows: Int, digest: UInt8) {
        var digest: UInt8 = 0
        let rows = try snapshot.forEach(range, limit: limit) { _, value in
            if let first = value.first { digest ^= first }
            return true
        }
        return (rows, digest)
    }

    /// One synchronous snapshot per read (`Database.read`: register, get, release), in the harness's synchronous
    /// loop as the raw map row is: a read-only transaction without a transaction object or an async call.
    static func snapshotReadRow(_ harness: Harness, _ db: Database, _ data: Dataset) -> BenchRow {
        BenchRow("db.read get (sync)") { length, seed in
            await harness.measureSynchronous(length, seed: seed) { w in
                let key = data.randomKey(using: &w.rng)
                _ = try? db.read { try $0.get(key) }
            }
        }
    }

    /// One `Database.withSnapshot` per read, in the async harness as the other engine rows: a read-only
    /// transaction with one async call and no transaction object.
    static let asyncSnapshotGet = Workload<Database>(
        name: "snapshot-get", description: "one get in a Database.withSnapshot", SnapshotGet())

    /// The step of ``asyncSnapshotGet`` (a type, so that the harness's loop calls it directly, as it calls the
    /// catalogue's workloads).
    struct SnapshotGet: HarnessOperation {
        nonisolated(nonsending) func run(_ context: WorkloadContext<Database>, _ w: inout Worker) async throws {
            let key = context.data.randomKey(using: &w.rng)
            _ = try await context.store.withSnapshot { try $0.get(key) }
        }
    }

    func run() async throws {
        if let backend { return try await runComparison(url: backend) }
        let workload = Workload<Database>.named(self.workload)!  // checked by validate()
        let data = Dataset(keyCount: keys, valueSize: valueSize, distribution: distribution.chooserDistribution)
        let db = map.makeDatabase()
        try await data.load(into: db)
        for k in data.keys { _ = try await db.get(k) }  // let the directory promote its new keys, as the raw map does

        let harness = Harness(tasks: threads)
        let reads = WorkloadContext(store: db, data: data, isolation: .snapshot)
        var rows = [
            map.rawMapRow(harness, data),
            harness.row("db.get", .pointGet, on: reads),
            harness.row("tx get (snapshot, ro)", .readOnlyTransactionGet, on: reads),
            Self.snapshotReadRow(harness, db, data),
            harness.row("db.withSnapshot get (async)", Self.asyncSnapshotGet, on: reads),
            harness.row(
                "\(workload.name) @ \(isolation.rawValue)", workload,
                on: WorkloadContext(store: db, data: data, isolation: isolation))
        ]
        // At `.serializable`, the same workload at `.snapshot` in the same run: what serializability costs.
        if isolation == .serializable {
            rows.append(harness.row("\(workload.name) @ snapshot", workload, on: reads))
        }
        // ycsb-e's scans through the read snapshots, rows visited in place (the LMDB peer's cursor does so).
        if workload.name == Workload<Database>.ycsbE.name {
            rows.append(harness.row(Self.ycsbEReadRow, Self.ycsbEWithReadSnapshots, on: reads))
            rows.append(harness.row(Self.ycsbEAsyncSnapshotRow, Self.ycsbEWithAsyncSnapshots, on: reads))
        }

        var report = Report<EngineBenchRecord>(
            title: "isokv bench engine",
            parameters: [
                ("workload", workload.name), ("isolation", isolation.rawValue),
                ("threads", "\(threads)"), ("keys", "\(keys)"), ("seconds per row", "\(seconds)"),
                ("value size", "\(valueSize)"), ("distribution", distribution.rawValue),
                ("interleaved slices per row", "\(Self.slices)"), ("warm-up per row", "\(warmup)"),
                ("map", map.rawValue), ("snapshot held open", holdSnapshot ? "yes" : "no"),
                ("allocator", Allocator.setting)
            ],
            columns: ["operation", "ops/s", "p50", "p99", "vs raw map", "aborts (retries)"])

        // The long reader: registered by its first read, ended after the last row.
        let held = holdSnapshot ? try await db.begin(.snapshot, readOnly: true) : nil
        _ = try await held?.get(data.keys[0])
        try await Harness.warmUp(rows, for: .milliseconds(Int64(warmup * 1000)))
        let causesBefore = db.statistics().aborts
        let ssiBefore = db.statistics().serializable
        let counterBefore = try await db.get(Dataset.counterKey)?.value.int64 ?? 0
        let results = try await Harness.interleave(
            rows, perRow: .milliseconds(Int64(seconds * 1000)), slices: Self.slices)
        let causesAfter = db.statistics().aborts
        let ssiAfter = db.statistics().serializable
        let versionsHeld = db.statistics().versions
        try await held?.commit()

        let rawResult = results[0]
        let mixed = results[Self.workloadRow]
        for (row, r) in zip(rows, results) {
            let ratio = r.opsPerSecond / rawResult.opsPerSecond
            let counters = r.counters
            let aborts =
                counters.aborts.isEmpty
                ? "-"
                : counters.aborts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
                    + " (\(counters.retries))"
            report.add(
                [
                    row.name, Figure.rate(r.opsPerSecond), Figure.duration(nanoseconds: r.p50),
                    Figure.duration(nanoseconds: r.p99), Figure.ratio(ratio), aborts
                ],
                EngineBenchRecord(
                    operation: row.name, opsPerSecond: r.opsPerSecond, p50Nanoseconds: r.p50,
                    p99Nanoseconds: r.p99, p999Nanoseconds: r.p999, ratioToRawMap: ratio,
                    aborts: counters.aborts, retries: counters.retries, gaveUp: counters.gaveUp))
        }
        if isolation == .serializable {
            let baseline = results[Self.workloadRow + 1]
            func rate(_ r: HarnessResult) -> String { String(format: "%.2f%%", 100 * r.counters.abortRate) }
            report.notes.append(
                String(format: "serializable / snapshot throughput: %.2fx", mixed.opsPerSecond / baseline.opsPerSecond)
                    + "; abort rate (aborted attempts / attempts): snapshot \(rate(baseline)), serializable \(rate(mixed))."
            )
            report.notes.append(
                "aborts by cause over the measured slices (both workload rows; the snapshot row can only fail by first updater wins): "
                    + "first updater wins \(causesAfter.firstUpdaterWins - causesBefore.firstUpdaterWins), "
                    + "rw-conflict on read \(causesAfter.rwConflictOnRead - causesBefore.rwConflictOnRead), "
                    + "on write \(causesAfter.rwConflictOnWrite - causesBefore.rwConflictOnWrite), "
                    + "canceled pivots \(causesAfter.canceledPivots - causesBefore.canceledPivots), "
                    + "deadlocks \(causesAfter.deadlocks - causesBefore.deadlocks).")
            let safeAtBegin = ssiAfter.safeReadOnlyAtBegin - ssiBefore.safeReadOnlyAtBegin
            let safeLater = ssiAfter.safeReadOnlyLater - ssiBefore.safeReadOnlyLater
            let unregistered = ssiAfter.readOnlyNeverRegistered - ssiBefore.readOnlyNeverRegistered
            let late = ssiAfter.readOnlyRegisteredLate - ssiBefore.readOnlyRegisteredLate
            if safeAtBegin + safeLater + unregistered + late > 0 {
                report.notes.append(
                    "read-only serializable transactions: \(safeAtBegin) safe at begin (untracked), "
                        + "\(unregistered) ended after one read without registering with SSI, "
                        + "\(late) registered at their second operation, "
                        + "\(safeLater) tracked until a concurrent writer ended, then found safe.")
            }
        }
        for (row, r) in zip(rows, results) where r.counters.scans > 0 {
            let perSecond = Double(r.counters.scans) / Swift.max(r.seconds, 1e-9)
            let keysPerSecond = Double(r.counters.keysScanned) / Swift.max(r.seconds, 1e-9)
            report.notes.append(
                String(
                    format: "scans: %.0f scans/s, %.0f keys scanned/s (%.1f rows per scan) in the %@ row.",
                    perSecond, keysPerSecond, Double(r.counters.keysScanned) / Double(r.counters.scans), row.name))
        }
        if holdSnapshot {
            report.notes.append(
                "snapshot held open: one read-only transaction kept its snapshot through every row; "
                    + "\(versionsHeld) versions were held when it ended (\(db.statistics().versions) after).")
        }
        report.notes.append(
            "vs raw map: throughput / the raw \(map.baselineName) map's point loads on the same keys, same run.")
        if map != .readMostly && map != .chainTable {
            report.notes.append(
                "Only the read-mostly directory is specialized in the engine; \(map.rawValue) runs through a "
                    + "generic wrapper there, while the raw map row is specialized: the ratio understates the engine.")
        }
        if workload.name == Workload<Database>.counter.name {
            let after = try await db.get(Dataset.counterKey)?.value.int64 ?? 0
            var committed = mixed.counters.committed
            if isolation == .serializable { committed += results[Self.workloadRow + 1].counters.committed }
            report.notes.append(
                "counter: \(committed) increments committed, counter moved by \(after - counterBefore)"
                    + (after - counterBefore < committed ? " (lost updates)" : ""))
        }
        print(try report.render(format))
    }
}

enum KeyDistribution: String, ExpressibleByArgument, CaseIterable, Sendable {
    case zipfian, uniform

    var chooserDistribution: KeyChooser.Distribution {
        switch self {
        case .zipfian: .zipfian(theta: 0.99)
        case .uniform: .uniform
        }
    }
}

/// The engine's key directory, and the raw map of the baseline row: the same map type.
enum DirectoryMap: String, ExpressibleByArgument, CaseIterable, Sendable {
    case chainTable = "chain-table", readMostly = "read-mostly", adaptive, hashTrie = "hash-trie", sharded, mutex

    /// The map of the baseline row: this one, or for the engine's own chain table (a directory of chains, not a
    /// general map) the read-mostly map.
    var baselineName: String { self == .chainTable ? DirectoryMap.readMostly.rawValue : rawValue }

    func makeDatabase() -> Database {
        switch self {
        case .chainTable: Database()
        case .readMostly: Database(directory: ReadMostlyDirectory())
        case .adaptive: Database(directory: GenericDirectory<AdaptiveMap<Bytes, KeyChain>>())
        case .hashTrie: Database(directory: GenericDirectory<HashTrieMap<Bytes, KeyChain>>())
        case .sharded: Database(directory: GenericDirectory<ShardedMap<Bytes, KeyChain>>())
        case .mutex: Database(directory: GenericDirectory<MutexMap<Bytes, KeyChain>>())
        }
    }

    /// The baseline row over a fresh map of this type loaded with the dataset.
    func rawMapRow(_ harness: Harness, _ data: Dataset) -> BenchRow {
        switch self {
        case .chainTable, .readMostly: Self.rawMapRow(ReadMostlyMap<Bytes, Bytes>.self, harness, data)
        case .adaptive: Self.rawMapRow(AdaptiveMap<Bytes, Bytes>.self, harness, data)
        case .hashTrie: Self.rawMapRow(HashTrieMap<Bytes, Bytes>.self, harness, data)
        case .sharded: Self.rawMapRow(ShardedMap<Bytes, Bytes>.self, harness, data)
        case .mutex: Self.rawMapRow(MutexMap<Bytes, Bytes>.self, harness, data)
        }
    }

    /// A map of the concrete type `M` (so its `@inlinable` load is specialized, as the engine's directory is) loaded
    /// with the same keys, read in the harness's synchronous loop: the same key choices as the engine rows, no async
    /// call per load. Engine-specific (it needs `ConcurrentMaps`), hence here and not in `IsoKVWorkloads`.
    static func rawMapRow<M: ConcurrentMap>(_ type: M.Type, _ harness: Harness, _ data: Dataset) -> BenchRow
    where M.Key == Bytes, M.Value == Bytes {
        let map = M()
        for k in data.keys { map.store(k, data.loadedValue()) }  // a buffer per key, as `Dataset.load` stores
        for k in data.keys { _ = map.load(k) }  // read-mostly maps promote their dirty part on misses
        return BenchRow("raw map load") { length, seed in
            await harness.measureSynchronous(length, seed: seed) { w in _ = map.load(data.randomKey(using: &w.rng)) }
        }
    }
}

extension IsolationLevel: ExpressibleByArgument {}

/// One row of the JSON output.
struct EngineBenchRecord: Encodable {
    var operation: String
    var opsPerSecond: Double
    var p50Nanoseconds: Double
    var p99Nanoseconds: Double
    var p999Nanoseconds: Double
    var ratioToRawMap: Double
    /// Failed attempts by SQLSTATE (each retried, or the last attempt of an operation given up).
    var aborts: [String: Int]
    var retries: Int
    /// Operations abandoned after 100 attempts.
    var gaveUp: Int
}
