import ArgumentParser
import Foundation
import IsoKVBaseline
import IsoKVLab
import IsoKVLabBackends

/// `isokv lab report`: runs the lab's experiments and writes a self-contained HTML report with SVG charts, and the
/// JSON it was drawn from.
struct LabReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Run the lab's experiments and write a self-contained HTML report with charts, and its JSON.",
        discussion: """
            Writes DIR/index.html (inline CSS and SVG only: no scripts, fonts, images or external links; open it \
            anywhere) and DIR/report.json (the same report as data, with each experiment's results, the machine and \
            the parameters). The page opens with the correctness box: a strategy that claims to prevent lost \
            updates and lost one, or an anomaly cell the conformance suite did not expect, is listed there as FAIL \
            and the command exits with status 1 (after writing the report). --quick runs small N and short budgets. \
            Sections: lost-update, anomalies, isolation, write-skew, queue and contention on every backend of \
            --backend (as the other lab commands take it), then the SQLite baseline (in-process, embedded only).
            """
    )

    @OptionGroup var backends: LabBackendOptions
    @Option(help: "Directory to write index.html and report.json into (created if missing).") var out: String
    @Flag(help: "Small N and short budgets: a report in seconds.") var quick = false
    @Option(help: "Fixes every experiment's schedule where the experiment allows it.") var seed: UInt64 = 1
    @Option(help: "Concurrent operations of the lost-update experiment (default 100, 20 with --quick).") var n: Int?
    @Option(help: "Simulated client-server round trip before each lost-update statement, in microseconds.")
    var statementLatencyUs: Int = 0

    func validate() throws {
        if let n, n < 1 || n > 100_000 { throw ValidationError("--n must be in 1...100000") }
        guard statementLatencyUs >= 0, statementLatencyUs <= 1_000_000 else {
            throw ValidationError("--statement-latency-us must be in 0...1000000")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw ValidationError("--out \(out) exists and is not a directory")
        }
    }

    func run() async throws {
        let options = LabReportOptions(
            quick: quick, seed: seed, operations: n, statementLatencyMicroseconds: statementLatencyUs)
        let showProgress = isatty(STDERR_FILENO) == 1
        let specs = try backends.specs()
        let reportBackends = try specs.map { spec in
            LabReportBackend(
                name: spec.name, description: spec.description, isolatesRuns: spec.isolatesRuns,
                backend: try spec.backend())
        }
        let runner = LabReportRunner(
            experiments: LabReportRunner.standard(on: reportBackends) + [BaselineReportExperiment()])
        let report = try await runner.run(options) { name in
            if showProgress { FileHandle.standardError.write(Data("running \(name)…\n".utf8)) }
        }
        let directory = URL(fileURLWithPath: out, isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let html = directory.appendingPathComponent("index.html")
        let json = directory.appendingPathComponent("report.json")
        try Data(ReportHTML.render(report).utf8).write(to: html, options: .atomic)
        try report.jsonData().write(to: json, options: .atomic)
        print("wrote \(html.path)")
        print("wrote \(json.path)")
        print("\(report.charts.count) charts, \(report.checks.count) checks")
        let failures = report.failures
        if failures.isEmpty {
            print("all \(report.checks.filter { $0.status == .pass }.count) guarantees held")
        } else {
            for check in failures { print("FAIL \(check.subject): \(check.detail)") }
            throw ExitCode(1)
        }
    }
}

/// The `baseline` experiment (SQLite through GRDB beside the embedded engine, in this process) as a report section:
/// the embedded ÷ SQLite throughput ratio per workload, and the counters' exactness as checks.
struct BaselineReportExperiment: LabReportExperiment {
    let name = "baseline"

    func parameters(for options: LabReportOptions) -> BaselineParameters {
        options.quick ? .quick(seed: options.seed) : BaselineParameters(seed: options.seed)
    }

    func parameters(_ options: LabReportOptions) -> [ReportParameter] {
        let p = parameters(for: options)
        return [
            ReportParameter("baseline: stores", "embedded (in-memory) beside SQLite (GRDB, WAL, synchronous = OFF)"),
            ReportParameter("baseline: tasks / keys / value size", "\(p.tasks) / \(p.keys) / \(p.valueSize)"),
            ReportParameter(
                "baseline: seconds per workload and store", "\(p.seconds) in \(p.slices) alternating slices")
        ]
    }

    func section(_ options: LabReportOptions) async throws -> ReportSection {
        try Self.section(try await BaselineExperiment(parameters(for: options)).run())
    }

    static func section(_ results: [BaselineResult], id: String = "baseline") throws -> ReportSection {
        var section = ReportSection(
            id: id, title: "Baseline: the embedded engine beside SQLite",
            summary: """
                The same task loop drives the embedded engine and SQLite (GRDB, a WAL file, synchronous = OFF), \
                their slices alternating so that drift in the machine's load hits both alike: YCSB a, b and c with \
                Zipfian keys, and a hot counter. Each operation is its own transaction. Ratios of the same run; a \
                debug build understates both.
                """)
        section.checks = results.compactMap { r in
            r.countersExact.map {
                ReportCheck(
                    $0 ? .pass : .fail, "baseline \(r.workload.rawValue): both counters equal the increments returned",
                    "embedded \(r.embeddedOperations) operations, sqlite \(r.sqliteOperations) operations")
            }
        }
        section.blocks.append(
            .table(
                ReportTable(
                    caption: "Throughput and latency per workload, same run",
                    columns: [
                        "workload", "embedded ops/s", "sqlite ops/s", "embedded ÷ sqlite", "embedded p99", "sqlite p99"
                    ],
                    rows: results.map { r in
                        [
                            ReportCell(r.workload.rawValue),
                            ReportCell(ReportFormat.value(r.embeddedOpsPerSecond, .perSecond)),
                            ReportCell(ReportFormat.value(r.sqliteOpsPerSecond, .perSecond)),
                            ReportCell(String(format: "%.2f×", r.ratio)),
                            ReportCell(ReportFormat.duration(nanoseconds: r.embeddedP99Nanoseconds)),
                            ReportCell(ReportFormat.duration(nanoseconds: r.sqliteP99Nanoseconds))
                        ]
                    })))
        section.blocks.append(
            .chart(
                ReportChart(
                    id: "\(id)-ratio", title: "Embedded ÷ SQLite throughput per workload",
                    caption: "Operations per second of the embedded engine divided by SQLite's, measured in the same "
                        + "run; above 1 the engine is faster.",
                    kind: .bars(
                        ReportBarChart(
                            categoryAxis: "workload", valueAxis: ReportAxis("embedded ÷ sqlite"),
                            categories: results.map(\.workload.rawValue),
                            series: [ReportSeries("embedded ÷ sqlite", results.map(\.ratio))])))))
        section.data = try ReportJSON(encoding: results)
        return section
    }
}
