import ArgumentParser
import Foundation
import MapBenchmarks

/// `isokv bench maps`: every workload of Go's `map_bench_test.go` (plus mixed-90-10 and churn) over every
/// ``MapImplementation``, on OS threads, with ratios to `MutexMap` and 1→N scaling; optionally merged with a
/// peer's JSON (the Go program in `scripts/go-syncmap-bench`).
struct BenchMaps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maps",
        abstract: "Throughput of the concurrent maps on Go's sync.Map workloads.",
        discussion: """
            Build in release for meaningful numbers: swift run -c release isokv bench maps
            One operation is one iteration of a workload's loop (as Go's ns/op). Workloads: \
            \(MapWorkload.allCases.map(\.rawValue).joined(separator: ", ")).
            Implementations: \(MapImplementation.all.map(\.name).joined(separator: ", ")).
            JSON schema: see Sources/MapBenchmarks/DESIGN.md.
            """
    )

    @Option(help: "Comma-separated thread counts, 1...256.")
    var threads: String = "1,2"

    @Option(help: "Measured seconds per (workload, implementation, threads), 0.01...3600.")
    var duration: Double = 1

    @Option(help: "Warm-up seconds before each measurement, 0...60.")
    var warmup: Double = 0.2

    @Option(help: "Comma-separated workloads (default: all).")
    var workload: String?

    @Option(help: "Comma-separated implementations (default: all).")
    var implementation: String?

    @Option(parsing: .upToNextOption, help: "JSON files of peer records (same schema) to merge into the table.")
    var peer: [String] = []

    @Option(help: "table or json.")
    var format: OutputFormat = .table

    func validate() throws {
        _ = try parsedThreads()
        _ = try parsedWorkloads()
        _ = try parsedImplementations()
        guard duration.isFinite, (0.01...3600).contains(duration) else {
            throw ValidationError("--duration must be between 0.01 and 3600 seconds, got \(duration)")
        }
        guard warmup.isFinite, (0...60).contains(warmup) else {
            throw ValidationError("--warmup must be between 0 and 60 seconds, got \(warmup)")
        }
    }

    func run() throws {
        let threadCounts = try parsedThreads()
        let workloads = try parsedWorkloads()
        let implementations = try parsedImplementations()
        let peers = try peer.map { path -> MapBenchDocument in
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("--peer \(path): cannot read the file")
            }
            do { return try MapBenchDocument.decode(data) } catch {
                throw ValidationError("--peer \(path): not a bench maps JSON document (\(error))")
            }
        }
        let limit = BenchLimit.timed(warmup: .seconds(warmup), measure: .seconds(duration))

        var ours: [MapBenchRecord] = []
        for w in workloads {
            for impl in implementations {
                for t in threadCounts {
                    let m = impl.run(w, t, limit)
                    ours.append(MapBenchRecord(m))
                    if format == .table {
                        FileHandle.standardError.write(
                            Data("  \(w.rawValue) \(impl.name) ×\(t): \(Figure.rate(m.opsPerSecond)) ops/s\n".utf8))
                    }
                }
            }
        }
        ours = MapBenchRecord.derive(ours, baselines: ours)
        let wanted = Set(workloads.map(\.rawValue))
        let theirs = peers.flatMap { doc in
            MapBenchRecord.derive(
                doc.results.filter { wanted.contains($0.workload) && threadCounts.contains($0.threads) },
                baselines: ours)
        }

        var report = Report<MapBenchRecord>(
            title: "isokv bench maps",
            parameters: [
                ("threads", threadCounts.map(String.init).joined(separator: ",")),
                ("duration_s", String(duration)),
                ("warmup_s", String(warmup)),
                ("cores", String(ProcessInfo.processInfo.activeProcessorCount)),
                (
                    "peers",
                    peers.isEmpty ? "none" : peers.map { $0.parameters["source"] ?? $0.title }.joined(separator: ",")
                )
            ],
            columns: Self.columns(threadCounts))
        report.records = ours + theirs
        for w in workloads {
            let rows = (ours + theirs).filter { $0.workload == w.rawValue }
            var names: [String] = []
            for r in rows where !names.contains(r.implementation) { names.append(r.implementation) }
            for name in names {
                report.rows.append(Self.row(w.rawValue, name, rows.filter { $0.implementation == name }, threadCounts))
            }
        }
        report.notes = [
            "ops/s: loop iterations per second over all threads; ×mutex: ratio to MutexMap at the same thread count;",
            "1→N: ops/s at N threads ÷ ops/s at 1 thread. Peer rows (go:…) are divided by our MutexMap too."
        ]
        print(try report.render(format))
    }

    static func columns(_ threads: [Int]) -> [String] {
        var c = ["workload", "implementation"]
        for t in threads { c += ["\(t)T ops/s", "\(t)T ×mutex"] }
        if threads.contains(1) { for t in threads where t != 1 { c.append("1→\(t)") } }
        return c
    }

    static func row(_ workload: String, _ name: String, _ records: [MapBenchRecord], _ threads: [Int]) -> [String] {
        var cells = [workload, name]
        func at(_ t: Int) -> MapBenchRecord? { records.first { $0.threads == t } }
        for t in threads {
            if let r = at(t) {
                cells += [Figure.rate(r.opsPerSec), r.ratioToMutex.map(Figure.ratio) ?? "-"]
            } else {
                cells += ["-", "-"]
            }
        }
        if threads.contains(1) {
            for t in threads where t != 1 { cells.append(at(t)?.scaling.map(Figure.ratio) ?? "-") }
        }
        return cells
    }

    func parsedThreads() throws -> [Int] {
        let parts = threads.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var out: [Int] = []
        for p in parts {
            guard let n = Int(p), (1...256).contains(n) else {
                throw ValidationError("--threads: '\(p)' is not a thread count in 1...256")
            }
            if !out.contains(n) { out.append(n) }
        }
        guard !out.isEmpty else { throw ValidationError("--threads: give at least one thread count") }
        return out
    }

    func parsedWorkloads() throws -> [MapWorkload] {
        guard let workload else { return MapWorkload.allCases }
        return try Self.list(workload, option: "--workload", choices: MapWorkload.allCases.map(\.rawValue))
            .map { MapWorkload(rawValue: $0)! }
    }

    func parsedImplementations() throws -> [MapImplementation] {
        guard let implementation else { return MapImplementation.all }
        let names = try Self.list(
            implementation, option: "--implementation", choices: MapImplementation.all.map(\.name))
        return MapImplementation.all.filter { names.contains($0.name) }
    }

    /// Splits a comma-separated list and checks every item against `choices` (a typed error names the valid ones).
    static func list(_ s: String, option: String, choices: [String]) throws -> [String] {
        let items = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw ValidationError("\(option): empty list") }
        for i in items where !choices.contains(i) {
            throw ValidationError("\(option): unknown '\(i)'; choose from \(choices.joined(separator: ", "))")
        }
        return items
    }
}
