import Foundation
import IsoKVCore
import IsoKVLab
import IsoKVTestSupport
import Testing

/// The isolation, queue, write-skew and contention sections, drawn from synthetic results (decoded from JSON as the
/// experiments encode them): a broken guarantee is a FAIL at the top of the page; unprotected modes are info.
@Suite("Lab report sections")
struct ReportSectionsTests {
    static func decode<T: Decodable>(_ type: T.Type, _ fields: [String: Any]) throws -> T {
        try JSONDecoder().decode(type, from: JSONSerialization.data(withJSONObject: fields))
    }

    static func isolation(_ level: IsolationLevel, backend: String = "embedded", found: Int64, ops: Double = 1_000)
        throws -> IsolationResult
    {
        let claims = level == .snapshot || level == .serializable
        return try decode(
            IsolationResult.self,
            [
                "backend": backend, "workload": "account-rmw", "level": level.rawValue, "clients": 4,
                "operations": 200, "committed": 200, "gaveUp": 0, "otherErrors": [String: Int](),
                "aborts": ["40001": 7], "abortRate": 0.25, "wallSeconds": 0.2, "opsPerSecond": ops,
                "p50Nanoseconds": 10_000, "p99Nanoseconds": 90_000, "expected": 200, "found": found, "rows": found,
                "invariantHeld": found == 200, "levelPreventsLostUpdates": claims,
                "correctness": LostUpdateResult.judge(claims: claims, committed: 200, counter: found, rows: Int(found))
                    .rawValue
            ])
    }

    static func queue(_ claim: QueueClaim, dies: Bool, processedOnce: Int, duplicated: Int = 0) throws -> QueueResult {
        try decode(
            QueueResult.self,
            [
                "backend": "embedded", "claim": claim.rawValue, "consumerDied": dies, "producers": 2, "consumers": 5,
                "jobs": 60, "processedOnce": processedOnce, "lost": 60 - processedOnce - duplicated,
                "duplicated": duplicated, "leftInQueue": 0, "wallSeconds": 0.5, "jobsPerSecond": 120,
                "claimWaitP50Nanoseconds": 5_000, "claimWaitP99Nanoseconds": 50_000, "emptyPolls": 3,
                "claimConflicts": 1, "errors": [String: Int](),
                "exactlyOnce": processedOnce == 60 && duplicated == 0
            ].merging(dies ? ["diedJobRecovered": true] : [:]) { $1 })
    }

    static func writeSkew(_ mode: WriteSkewMode, broken: Int) throws -> WriteSkewResult {
        try decode(
            WriteSkewResult.self,
            [
                "backend": "embedded", "scenario": "doctors",
                "mode": ["level": mode.level.rawValue, "explicitLock": mode.explicitLock], "trials": 20,
                "broken": broken, "aborts": [String: Int](), "failed": 0, "wallSeconds": 0.1,
                "claimsToPrevent": mode.preventsWriteSkew,
                "correctness": LostUpdateResult.judge(
                    claims: mode.preventsWriteSkew, committed: 20, counter: Int64(20 - broken), rows: 20 - broken
                ).rawValue
            ])
    }

    static func report(_ sections: [ReportSection]) -> LabReport {
        LabReport(title: "report", machine: ReportTests.machine, parameters: [], sections: sections)
    }

    static func expectFailFirst(_ report: LabReport, _ sectionID: String) throws {
        let html = ReportHTML.render(report)
        let banner = try #require(html.range(of: "<p class=\"verdict fail\">FAIL:"))
        let section = try #require(html.range(of: "<section id=\"\(sectionID)\">"))
        #expect(banner.lowerBound < section.lowerBound)
    }

    @Test("isolation: a level that claims the invariant and broke it is FAIL; read committed breaking it is info")
    func isolationFail() throws {
        let results = [
            try Self.isolation(.readCommitted, found: 180), try Self.isolation(.snapshot, found: 200),
            try Self.isolation(.serializable, found: 199)
        ]
        let report = Self.report([try IsolationReport.section(results)])
        #expect(
            report.failures.map(\.subject) == ["isolation account-rmw at serializable (embedded) claims the invariant"])
        #expect(report.checks.filter { $0.status == .info }.count == 1)
        #expect(report.checks.filter { $0.status == .pass }.count == 1)
        try Self.expectFailFirst(report, "isolation")
        let fine = Self.report([try IsolationReport.section(Array(results.prefix(2)))])
        #expect(fine.failures.isEmpty)
    }

    @Test("isolation charts: throughput, p50/p99 and abort rate per level, one series per backend")
    func isolationCharts() throws {
        let results = [
            try Self.isolation(.snapshot, found: 200, ops: 1_000),
            try Self.isolation(.serializable, found: 200, ops: 500),
            try Self.isolation(.snapshot, backend: "postgresql", found: 200, ops: 300)
        ]
        let section = try IsolationReport.section(results)
        let charts = Self.report([section]).charts
        #expect(
            charts.map(\.id) == [
                "isolation-throughput-account-rmw", "isolation-latency-account-rmw", "isolation-aborts-account-rmw"
            ])
        guard case .bars(let throughput) = charts[0].kind, case .bars(let latency) = charts[1].kind else {
            Issue.record("not bars")
            return
        }
        #expect(throughput.categories == ["snapshot", "serializable"])
        #expect(throughput.series.map(\.name) == ["embedded", "postgresql"])
        #expect(throughput.series[0].values == [1_000, 500] && throughput.series[1].values == [300, nil])
        #expect(latency.series.map(\.name) == ["embedded p50", "embedded p99", "postgresql p50", "postgresql p99"])
        #expect(charts.allSatisfy { !$0.isEmpty })
    }

    @Test("queue: a lost or duplicated job is FAIL; jobs per second per claim mode, with and without a dying consumer")
    func queueFail() throws {
        let results = [
            try Self.queue(.skipLocked, dies: false, processedOnce: 60),
            try Self.queue(.skipLocked, dies: true, processedOnce: 60),
            try Self.queue(.optimisticVersion, dies: true, processedOnce: 58, duplicated: 2)
        ]
        let report = Self.report([try QueueReport.section(results)])
        #expect(
            report.failures.map(\.subject) == [
                "queue optimistic-version (embedded) with a dying consumer processes every job exactly once"
            ])
        try Self.expectFailFirst(report, "queue")
        guard case .bars(let jobs) = report.charts[0].kind else {
            Issue.record("not bars")
            return
        }
        #expect(jobs.categories == ["skip-locked", "optimistic-version"])
        #expect(jobs.series.map(\.name) == ["embedded", "embedded, a consumer dies"])
        #expect(jobs.series[0].values == [120, nil] && jobs.series[1].values == [120, 120])
        #expect(Self.report([try QueueReport.section(Array(results.prefix(2)))]).failures.isEmpty)
    }

    @Test("write-skew: serializable or explicit locks breaking the invariant is FAIL; snapshot breaking it is info")
    func writeSkewFail() throws {
        let results = [
            try Self.writeSkew(WriteSkewMode(.snapshot), broken: 9),
            try Self.writeSkew(WriteSkewMode(.serializable), broken: 0),
            try Self.writeSkew(WriteSkewMode(.readCommitted, explicitLock: true), broken: 1)
        ]
        let report = Self.report([try WriteSkewReport.section(results)])
        #expect(
            report.failures.map(\.subject) == [
                "write-skew doctors under read-committed + lock (embedded) claims to prevent write skew"
            ])
        try Self.expectFailFirst(report, "write-skew")
        guard case .bars(let broken) = report.charts.first?.kind else {
            Issue.record("no chart")
            return
        }
        #expect(broken.categories == ["snapshot", "serializable", "read-committed + lock"])
        #expect(broken.series[0].values == [0.45, 0, 0.05])
        let serializableBroke = [try Self.writeSkew(WriteSkewMode(.serializable), broken: 2)]
        #expect(Self.report([try WriteSkewReport.section(serializableBroke)]).failures.count == 1)
        #expect(Self.report([try WriteSkewReport.section(Array(results.prefix(2)))]).failures.isEmpty)
    }

    @Test("contention: the surface becomes ContentionCharts' lines and heat maps; a wrong cell is FAIL")
    func contention() throws {
        func cell(_ clients: Int, _ theta: Double, correct: Bool = true) -> [String: Any] {
            [
                "backend": "embedded", "strategy": "row-lock", "clients": clients, "theta": theta, "operations": 40,
                "committed": 40, "gaveUp": 0, "otherErrors": [String: Int](), "retries": 0,
                "opsPerSecond": Double(clients * 100) + theta, "p50Nanoseconds": 1_000, "p99Nanoseconds": 2_000,
                "abortRate": 0, "giveUpRate": 0, "correct": correct
            ]
        }
        let cells = [cell(1, 0), cell(1, 1.2), cell(8, 0), cell(8, 1.2, correct: false)]
        let surface = try Self.decode(
            ContentionSurface.self,
            [
                "backend": "embedded", "strategy": "row-lock", "clients": [1, 8], "thetas": [0, 1.2],
                "opsPerSecond": [[100, 101.2], [800, 801.2]], "abortRate": [[0, 0], [0, 0]],
                "giveUpRate": [[0, 0], [0, 0]], "correct": [[true, true], [true, false]], "cells": cells
            ])
        let report = Self.report([try ContentionReport.section([surface])])
        #expect(
            report.charts.map(\.id) == [
                "contention-lines-uniform", "contention-lines-zipf 1.2", "contention-surface-row-lock"
            ])
        #expect(report.failures.count == 1)
        guard case .heatMap(let map) = report.charts[2].kind else {
            Issue.record("no heat map")
            return
        }
        #expect(map.rows == ["uniform", "zipf 1.2"] && map.values == [[100, 800], [101.2, 801.2]])
    }

    @Test("anomalies on several backends: a coloured matrix and comparison per backend; a shared server is skipped")
    func anomaliesPerBackend() async throws {
        let shared = LabReportBackend(
            name: "http", description: "http shared", isolatesRuns: false, backend: EmbeddedLabBackend())
        let section = try await AnomaliesReportExperiment(on: [.embedded, .embedded, shared]).section(
            LabReportOptions(quick: true))
        let tables = section.blocks.compactMap { block -> ReportTable? in
            if case .table(let table) = block { return table }
            return nil
        }
        #expect(tables.count == 4)
        #expect(section.checks.count == 4 && section.checks.allSatisfy { $0.status == .pass })
        #expect(
            section.blocks.contains(
                .note(
                    "Not run on http shared: the replays need a fresh store each, and a shared server only gives a fresh key prefix."
                )))
        #expect(tables[0].rows.flatMap { $0 }.contains { $0.tone == .occurs })
    }

    @Test("isokv lab report takes the lab's backend options: a malformed backend is a clear error")
    func reportBadBackend() throws {
        let run = try IsokvExecutable.run(["lab", "report", "--quick", "--out", "/tmp/unused", "--backend", "mysql://x"]
        )
        #expect(run.status != 0)
        #expect(run.stderr.contains("unknown backend"), "\(run.stderr)")
    }
}
