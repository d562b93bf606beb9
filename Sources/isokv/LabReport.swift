import ArgumentParser
import Foundation
import IsoKVLab

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
            and the command exits with status 1 (after writing the report). --quick runs small N and short budgets.
            """
    )

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
        let report = try await LabReportRunner().run(options) { name in
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
