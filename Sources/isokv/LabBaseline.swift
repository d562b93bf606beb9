import ArgumentParser
import Foundation
import IsoKVBaseline
import IsoKVLab

/// `isokv lab baseline`: SQLite through GRDB beside the embedded engine, the same loop, one run, with ratios.
struct LabBaseline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baseline",
        abstract: "SQLite (GRDB) beside the embedded engine: YCSB a/b/c and the hot counter, in-process, with ratios.",
        discussion: """
            The same task loop drives both stores, their slices alternating (embedded, SQLite, …) so that drift in \
            the machine's load hits both alike: YCSB a (50% reads, 50% updates), b (95/5), c (reads), Zipfian keys \
            (θ 0.99), and the counter (every operation adds one to one row). The engine is in memory; SQLite is a \
            WAL file with synchronous = OFF (no fsync either). Each operation is its own transaction. The counter's \
            end value is checked on both against the increments that returned (exit 1 if not). Build in release \
            for meaningful numbers. --backend does not apply (both stores are in this process).
            """)

    @OptionGroup var lab: LabOptions
    @Option(help: "Concurrent tasks (default 4; --quick 2).") var tasks: Int?
    @Option(help: "Measured seconds per workload and store (default 2; --quick 0.4).") var seconds: Double?

    func run() async throws {
        var p = lab.quick ? BaselineParameters.quick(seed: lab.seed) : BaselineParameters(seed: lab.seed)
        if let tasks {
            guard (1...256).contains(tasks) else { throw ValidationError("--tasks must be in 1...256") }
            p.tasks = tasks
        }
        if let seconds {
            guard seconds.isFinite, (0.01...3600).contains(seconds) else {
                throw ValidationError("--seconds must be in 0.01...3600")
            }
            p.seconds = seconds
        }
        let progress = LabProgress()
        progress.plan(BaselineWorkload.allCases.count, "baseline")
        let parameters = p
        let results = try await ProgressBar.run(progress) {
            try await BaselineExperiment(parameters).run { label in
                progress.label(label)
                progress.advance()
            }
        }
        var report = Report<BaselineResult>(
            title: "isokv lab baseline: the embedded engine beside SQLite (GRDB), same loop, same run",
            parameters: [
                ("tasks", "\(p.tasks)"), ("keys", "\(p.keys)"), ("value size", "\(p.valueSize)"),
                ("seconds per workload and store", "\(p.seconds) in \(p.slices) alternating slices"),
                ("key skew", "Zipfian θ \(p.theta)"), ("seed", "\(p.seed)"),
                ("sqlite", "GRDB DatabasePool, WAL, synchronous = OFF"), ("embedded", "in-memory")
            ],
            columns: [
                "workload", "embedded ops/s", "sqlite ops/s", "embedded ÷ sqlite", "embedded p50", "sqlite p50",
                "embedded p99", "sqlite p99", "counter exact"
            ])
        for r in results {
            report.add(
                [
                    r.workload.rawValue, Figure.rate(r.embeddedOpsPerSecond), Figure.rate(r.sqliteOpsPerSecond),
                    Figure.ratio(r.ratio), Figure.duration(nanoseconds: r.embeddedP50Nanoseconds),
                    Figure.duration(nanoseconds: r.sqliteP50Nanoseconds),
                    Figure.duration(nanoseconds: r.embeddedP99Nanoseconds),
                    Figure.duration(nanoseconds: r.sqliteP99Nanoseconds),
                    r.countersExact.map { $0 ? "ok" : "FAIL" } ?? "-"
                ], r)
        }
        print(try report.render(lab.format))
        if results.contains(where: { $0.countersExact == false }) { throw ExitCode(1) }
    }
}
