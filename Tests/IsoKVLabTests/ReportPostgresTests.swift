import Foundation
import IsoKVLab
import IsoKVTestSupport
import Testing

@Suite("Lab report Postgres", .enabled(if: LabPostgres.url != nil, LabPostgres.skipReason))
struct ReportPostgresTests {
    @Test("isokv lab report --quick --backend postgres://…: every section runs on PostgreSQL, no FAIL")
    func reportOnPostgres() throws {
        let directory = TemporaryDirectory("lab-report-pg")
        defer { directory.remove() }
        let out = directory.file("report")
        let seed = testSeed("lab report pg")
        let run = try IsokvExecutable.run([
            "lab", "report", "--quick", "--seed", "\(seed)", "--out", out, "--backend", LabPostgres.url!
        ])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        let report = try LabReport(json: Data(contentsOf: URL(fileURLWithPath: out + "/report.json")))
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(
            report.sections.map(\.id) == [
                "lost-update", "anomalies", "isolation", "write-skew", "queue", "contention", "baseline"
            ])
        for section in report.sections where section.id != "baseline" {
            #expect(section.checks.contains { $0.subject.contains("postgresql") }, "\(section.id)")
        }
        for chart in report.charts { #expect(!chart.isEmpty, "\(chart.id)") }
    }
}
