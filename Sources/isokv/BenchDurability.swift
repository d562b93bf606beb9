import ArgumentParser
import IsoKVSync
import Foundation
import IsoKVStorage
import IsoKVWorkloads
#if canImport(Glibc)
    import Glibc
#endif

/// `isokv bench durability`: group-commit throughput and latency of the WAL in each durability mode, beside the
/// disk's raw 4 KiB write + fdatasync measured in the same run.
struct BenchDurability: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "durability",
        abstract: "WAL commits/s, fsyncs/s, commits per fsync and commit latency vs the raw fdatasync rate."
    )

    @Option(help: "Concurrent committing tasks.")
    var writers = 64
    @Option(help: "Durability mode (fsync|buffered|unsafeNoSync); all three when omitted.")
    var mode: DurabilityMode?
    @Option(help: "Seconds per measurement.")
    var seconds = 2.0
    @Option(help: "Value bytes per commit (one key written per commit).")
    var valueBytes = 100
    @Option(help: "Directory for the temporary data (on the disk to measure).")
    var directory = "/tmp"
    @Option var format: OutputFormat = .table
    @Flag(help: "Commit through the MVCC engine (Database.open + db.put per commit) instead of raw WAL appends.")
    var engine = false

    struct Row: Encodable {
        var name: String
        var writers: Int
        var commitsPerSecond: Double
        var fsyncsPerSecond: Double
        var commitsPerFsync: Double
        var p50Nanoseconds: Double
        var p99Nanoseconds: Double
        /// Mean fdatasync latency: of the raw loop, or of the WAL's batch syncs (0 when the mode does not sync).
        var meanSyncNanoseconds: Double
        var throughputVsUnsafeNoSync: Double?
        var p50VsRawFsync: Double?
    }

    func run() async throws {
        guard writers >= 1, seconds > 0, valueBytes >= 0 else { throw ValidationError("writers ≥ 1, seconds > 0") }
        let base = directory + "/isokv-bench-durability-\(getpid())"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }

        // The raw baseline runs right before the fsync mode, so both see the same disk weather (a shared disk's
        // fdatasync latency drifts a lot from one second to the next).
        var rawBeforeFsync: Measurement?
        var results: [(DurabilityMode, Measurement)] = []
        for m in mode.map({ [$0] }) ?? [.unsafeNoSync, .buffered, .fsync] {
            if m == .fsync { rawBeforeFsync = try await Self.rawFsync(path: base + "/raw", seconds: min(seconds, 1.0)) }
            if engine {
                results.append(
                    (m, try await Self.measureEngine(m, writers, seconds, valueBytes, base + "/" + m.rawValue)))
                continue
            }
            results.append(
                (
                    m,
                    try await Self.measure(
                        mode: m, writers: writers, seconds: seconds, valueBytes: valueBytes,
                        directory: base + "/" + m.rawValue)
                ))
        }
        let baseline: Measurement
        if let rawBeforeFsync {
            baseline = rawBeforeFsync
        } else {
            baseline = try await Self.rawFsync(path: base + "/raw", seconds: min(seconds, 1.0))
        }
        let rawMeasurement = baseline
        let unsafeRate = results.first { $0.0 == .unsafeNoSync }?.1.commitsPerSecond

        var report = Report<Row>(
            title: "isokv bench durability",
            parameters: [
                ("writers", "\(writers)"), ("seconds", "\(seconds)"), ("value bytes", "\(valueBytes)"),
                ("directory", directory), ("through", engine ? "engine (Database.open, db.put)" : "WAL append")
            ],
            columns: [
                "run", "commits/s", "fsyncs/s", "commits/fsync", "p50", "p99", "mean sync", "vs unsafeNoSync",
                "p50 vs raw"
            ])
        let raw = rawMeasurement
        report.add(
            [
                "raw 4KiB write+fdatasync (1 thread)", Figure.rate(raw.commitsPerSecond),
                Figure.rate(raw.syncsPerSecond),
                "1.00", Figure.duration(nanoseconds: raw.p50), Figure.duration(nanoseconds: raw.p99),
                Figure.duration(nanoseconds: raw.meanSync), "-", "1.00x"
            ],
            Row(
                name: "raw", writers: 1, commitsPerSecond: raw.commitsPerSecond, fsyncsPerSecond: raw.syncsPerSecond,
                commitsPerFsync: 1, p50Nanoseconds: raw.p50, p99Nanoseconds: raw.p99,
                meanSyncNanoseconds: raw.meanSync, throughputVsUnsafeNoSync: nil, p50VsRawFsync: 1))
        for (m, r) in results {
            let perSync = r.syncsPerSecond > 0 ? r.commitsPerSecond / r.syncsPerSecond : .infinity
            let vsUnsafe = unsafeRate.map { r.commitsPerSecond / $0 }
            let vsRaw = r.p50 / raw.p50
            report.add(
                [
                    "\(engine ? "engine" : "WAL") \(m.rawValue)", Figure.rate(r.commitsPerSecond),
                    Figure.rate(r.syncsPerSecond),
                    perSync.isFinite ? String(format: "%.1f", perSync) : "-",
                    Figure.duration(nanoseconds: r.p50), Figure.duration(nanoseconds: r.p99),
                    r.meanSync > 0 ? Figure.duration(nanoseconds: r.meanSync) : "-",
                    vsUnsafe.map(Figure.ratio) ?? "-", Figure.ratio(vsRaw)
                ],
                Row(
                    name: m.rawValue, writers: writers, commitsPerSecond: r.commitsPerSecond,
                    fsyncsPerSecond: r.syncsPerSecond, commitsPerFsync: perSync.isFinite ? perSync : 0,
                    p50Nanoseconds: r.p50, p99Nanoseconds: r.p99, meanSyncNanoseconds: r.meanSync,
                    throughputVsUnsafeNoSync: vsUnsafe,
                    p50VsRawFsync: vsRaw))
        }
        report.notes = [
            "Each commit appends one record (1 key, \(valueBytes)-byte value) and waits until durable under the mode.",
            "fsyncs/s counts fdatasync calls on WAL segments (batches + rotations); buffered syncs only at rotation.",
            "mean sync: mean fdatasync latency (raw loop; WAL batch syncs); compare it with the raw one to see the",
            "disk's weather during the run (on a shared disk it drifts from ~70µs to several ms)."
        ]
        print(try report.render(format))
    }

    struct Measurement {
        var commitsPerSecond: Double
        var syncsPerSecond: Double
        var p50: Double
        var p99: Double
        var meanSync: Double
    }

    /// One thread appending 4 KiB and fdatasync-ing it, in a loop: the disk's durable-write floor.
    static func rawFsync(path: String, seconds: Double) async throws -> Measurement {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
                guard fd >= 0 else {
                    continuation.resume(throwing: ValidationError("cannot create \(path): errno \(errno)"))
                    return
                }
                defer { close(fd); unlink(path) }
                let block = [UInt8](repeating: 0x5A, count: 4096)
                var latencies = LatencyHistogram()
                let start = monotonicNanoseconds()
                let end = start + UInt64(seconds * 1e9)
                var now = start
                while now < end {
                    let t0 = now
                    _ = block.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
                    fdatasync(fd)
                    now = monotonicNanoseconds()
                    latencies.record(nanoseconds: now - t0)
                }
                let elapsed = Double(now - start) / 1e9
                let rate = Double(latencies.count) / elapsed
                continuation.resume(
                    returning: Measurement(
                        commitsPerSecond: rate, syncsPerSecond: rate,
                        p50: latencies.p50, p99: latencies.p99,
                        meanSync: latencies.mean))
            }
            thread.start()
        }
    }

    static func measure(
        mode: DurabilityMode, writers: Int, seconds: Double, valueBytes: Int,
        directory: String
    ) async throws -> Measurement {
        let (log, _) = try await WriteAheadLog.open(directory: directory, options: WALOptions(durability: mode))
        let value = [UInt8](repeating: 0xA5, count: valueBytes)
        let startStats = log.statistics
        let run = try await runWriters(writers, seconds) { w, i in
            try await log.append(
                CommitRecord(
                    sequence: UInt64(w) << 40 | i,
                    writes: [KeyWrite(key: Array("key\(w)".utf8), value: value, version: i)]))
        }
        let stats = log.statistics
        await log.close()
        return Measurement(
            run, syncs: stats.syncs - startStats.syncs,
            syncNanoseconds: stats.batchSyncNanoseconds - startStats.batchSyncNanoseconds)
    }

    /// Runs `writers` tasks that each call `commit(writer, i)` for i = 1, 2, … until `seconds` have passed, every
    /// commit timed (the library's harness with `sampleEvery: 1`). Shared by the log and engine runs.
    static func runWriters(
        _ writers: Int, _ seconds: Double,
        _ commit: @escaping @Sendable (Int, UInt64) async throws -> Void
    ) async throws -> HarnessResult {
        try await Harness(tasks: writers, sampleEvery: 1).measure(.duration(.nanoseconds(Int64(seconds * 1e9)))) { w in
            try await commit(w.task, UInt64(w.completed + 1))
        }
    }
}

extension DurabilityMode: ExpressibleByArgument {}

extension BenchDurability.Measurement {
    /// A run's figures from its commits (count, time, latency histogram) and the WAL's sync counters.
    init(_ run: HarnessResult, syncs: UInt64, syncNanoseconds: UInt64) {
        self.init(
            commitsPerSecond: run.opsPerSecond,
            syncsPerSecond: Double(syncs) / run.seconds,
            p50: run.p50, p99: run.p99,
            meanSync: Double(syncNanoseconds) / Double(max(1, syncs)))
    }
}
