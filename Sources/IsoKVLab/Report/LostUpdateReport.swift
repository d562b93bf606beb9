/// The `lost-update` experiment as a report section: the correctness table, throughput, latency percentiles,
/// retries and give-ups per strategy (one series per backend when several ran), and seed 003's published figures
/// beside ours, labelled as published.
///
/// ```swift
/// let parameters = LostUpdateParameters(operations: 100)
/// let results = try await LostUpdateExperiment(parameters).run()
/// let section = try LostUpdateReport.section([.init(backend: "embedded", parameters: parameters, results: results)])
/// ```
public enum LostUpdateReport {
    /// One backend's results.
    public struct Run: Hashable, Sendable, Codable {
        public var backend: String
        public var parameters: LostUpdateParameters
        public var results: [LostUpdateResult]

        public init(backend: String, parameters: LostUpdateParameters, results: [LostUpdateResult]) {
            self.backend = backend
            self.parameters = parameters
            self.results = results
        }
    }

    public static func section(_ runs: [Run], id: String = "lost-update") throws -> ReportSection {
        var section = ReportSection(
            id: id, title: "Lost updates: N concurrent reactions per strategy",
            summary: """
                Seed 003's second benchmark: N operations started at once, each reading the user's account, inserting \
                its reaction row and adding one to the thread's reaction counter, one fresh store per strategy. \
                Correctness: the final counter and the reaction rows must both equal the operations that reported \
                success; a strategy that claims to prevent lost updates and misses is a failure. Give-ups (out of \
                tries or time) are reported failures, not lost updates.
                """)
        section.checks = checks(runs)
        let strategies = LostUpdateStrategy.allCases.filter { s in
            runs.contains { $0.results.contains { $0.strategy == s } }
        }
        let several = runs.count > 1
        func result(_ run: Run, _ strategy: LostUpdateStrategy) -> LostUpdateResult? {
            run.results.first { $0.strategy == strategy }
        }
        func name(_ run: Run, _ what: String) -> String { several ? "\(run.backend) \(what)" : what }

        section.blocks.append(.table(table(runs)))
        section.blocks.append(
            .chart(
                ReportChart(
                    id: "\(id)-throughput", title: "Throughput per strategy",
                    caption: "Committed operations per second of wall time (first start to last return)"
                        + (several ? ", one bar per backend." : " on \(runs.first?.backend ?? "no backend")."),
                    kind: .bars(
                        ReportBarChart(
                            categoryAxis: "strategy", valueAxis: ReportAxis("committed operations", unit: .perSecond),
                            categories: strategies.map(\.rawValue),
                            series: runs.map { run in
                                ReportSeries(run.backend, strategies.map { result(run, $0)?.opsPerSecond })
                            })))))
        section.blocks.append(
            .chart(
                ReportChart(
                    id: "\(id)-latency", title: "Latency percentiles per strategy",
                    caption: "p50 and p99 of one operation from its call to its return: retries, backoff and "
                        + "queueing included.",
                    kind: .bars(
                        ReportBarChart(
                            categoryAxis: "strategy", valueAxis: ReportAxis("latency", unit: .nanoseconds),
                            categories: strategies.map(\.rawValue),
                            series: runs.flatMap { run in
                                [
                                    ReportSeries(name(run, "p50"), strategies.map { result(run, $0)?.p50Nanoseconds }),
                                    ReportSeries(name(run, "p99"), strategies.map { result(run, $0)?.p99Nanoseconds })
                                ]
                            })))))
        section.blocks.append(
            .chart(
                ReportChart(
                    id: "\(id)-retries", title: "Retries and give-ups per operation",
                    caption: "Attempts that failed and were tried again, and operations that ran out of tries or "
                        + "time, each divided by N. A strategy with neither draws no bar above zero.",
                    kind: .bars(
                        ReportBarChart(
                            categoryAxis: "strategy", valueAxis: ReportAxis("per operation"),
                            categories: strategies.map(\.rawValue),
                            series: runs.flatMap { run in
                                [
                                    ReportSeries(
                                        name(run, "retries per operation"),
                                        strategies.map {
                                            result(run, $0).map { Double($0.retries) / Double(max($0.operations, 1)) }
                                        }),
                                    ReportSeries(
                                        name(run, "give-ups per operation"),
                                        strategies.map {
                                            result(run, $0).map { Double($0.gaveUp) / Double(max($0.operations, 1)) }
                                        })
                                ]
                            })))))

        let published = strategies.filter { $0.seedPublished != nil }
        if !published.isEmpty {
            let seedSeries = { (value: (SeedFigure) -> Double) in
                ReportSeries(
                    "seed 003, published (PostgreSQL, Go/pgx, N = 100)", published.map { $0.seedPublished.map(value) },
                    published: true)
            }
            section.blocks.append(
                .chart(
                    ReportChart(
                        id: "\(id)-seed-rows",
                        title: "Reaction rows inserted, ours beside seed 003's published figures",
                        caption: "Reaction rows at the end divided by N. Seed 003's figures are published, not "
                            + "measured here; its missing rows are give-ups, not lost updates.",
                        kind: .bars(
                            ReportBarChart(
                                categoryAxis: "strategy", valueAxis: ReportAxis("rows / N", unit: .fraction),
                                categories: published.map(\.rawValue),
                                series: runs.map { run in
                                    ReportSeries(
                                        "\(run.backend), this run (N = \(run.parameters.operations))",
                                        published.map { s in
                                            result(run, s).map {
                                                Double($0.reactionRows) / Double(max($0.operations, 1))
                                            }
                                        })
                                } + [seedSeries { Double($0.rows) / 100 }])))))
            section.blocks.append(
                .chart(
                    ReportChart(
                        id: "\(id)-seed-wall", title: "Wall time, ours beside seed 003's published figures",
                        caption: "Wall time of all N operations. Seed 003's times are published (PostgreSQL over a "
                            + "network, test setup included), not measured here: a different machine, not a ratio.",
                        kind: .bars(
                            ReportBarChart(
                                categoryAxis: "strategy", valueAxis: ReportAxis("wall time", unit: .milliseconds),
                                categories: published.map(\.rawValue),
                                series: runs.map { run in
                                    ReportSeries(
                                        "\(run.backend), this run (N = \(run.parameters.operations))",
                                        published.map { s in result(run, s).map { $0.wallSeconds * 1_000 } })
                                } + [seedSeries { Double($0.milliseconds) }])))))
        }
        for strategy in strategies {
            section.blocks.append(.note("\(strategy.rawValue): \(strategy.summary)."))
        }
        section.data = try ReportJSON(encoding: runs)
        return section
    }

    /// One check per strategy and backend: a strategy that claims to prevent lost updates passes or FAILs; the
    /// unprotected baseline is reported for information.
    public static func checks(_ runs: [Run]) -> [ReportCheck] {
        runs.flatMap { run in
            run.results.map { r in
                let figures =
                    "counter \(r.finalCounter), rows \(r.reactionRows), committed \(r.committed) of "
                    + "\(r.operations), gave up \(r.gaveUp)"
                    + (r.otherErrors.isEmpty
                        ? ""
                        : ", errors "
                            + r.otherErrors.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }
                            .joined(separator: " "))
                let subject = "\(r.strategy.rawValue) (\(run.backend))"
                switch r.correctness {
                case .correct: return ReportCheck(.pass, "\(subject) loses no update", figures)
                case .fail:
                    return ReportCheck(
                        .fail, "\(subject) claims to prevent lost updates", "lost \(r.lostUpdates): \(figures)")
                case .brokenAsExpected:
                    return ReportCheck(
                        .info, "\(subject), unprotected",
                        "lost \(r.lostUpdates) of \(r.committed), as expected: \(figures)")
                case .unprotectedNoLossThisRun:
                    return ReportCheck(
                        .info, "\(subject), unprotected",
                        "no loss in this schedule (proves nothing): \(figures)")
                }
            }
        }
    }

    static func table(_ runs: [Run]) -> ReportTable {
        var rows: [[ReportCell]] = []
        for run in runs {
            for r in run.results {
                let verdict: ReportCell
                switch r.correctness {
                case .correct: verdict = ReportCell("ok: \(r.finalCounter) = \(r.committed) committed", .ok)
                case .fail: verdict = ReportCell("FAIL: lost \(r.lostUpdates)", .fail)
                case .brokenAsExpected: verdict = ReportCell("broken: lost \(r.lostUpdates) (unprotected)", .occurs)
                case .unprotectedNoLossThisRun: verdict = ReportCell("no loss this run (unprotected)", .muted)
                }
                rows.append([
                    ReportCell(r.strategy.rawValue), ReportCell(run.backend), verdict,
                    ReportCell("\(r.finalCounter)"), ReportCell("\(r.reactionRows)"), ReportCell("\(r.committed)"),
                    ReportCell("\(r.gaveUp)"), ReportCell("\(r.retries)"),
                    ReportCell(ReportFormat.duration(nanoseconds: r.wallSeconds * 1e9)),
                    ReportCell(ReportFormat.value(r.opsPerSecond, .perSecond)),
                    ReportCell(ReportFormat.duration(nanoseconds: r.p50Nanoseconds)),
                    ReportCell(ReportFormat.duration(nanoseconds: r.p99Nanoseconds)),
                    r.seedPublished.map { ReportCell("\($0.rows) of 100 rows, \($0.milliseconds) ms", .published) }
                        ?? ReportCell("–", .muted)
                ])
            }
        }
        return ReportTable(
            caption: "Correctness and cost per strategy",
            columns: [
                "strategy", "backend", "correctness", "counter", "rows", "committed", "gave up", "retries", "wall",
                "throughput", "p50", "p99", "seed 003 (published)"
            ], rows: rows)
    }
}
