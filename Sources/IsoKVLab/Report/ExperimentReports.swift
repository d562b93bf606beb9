/// The `isolation` experiment as a report section: per workload, throughput and p50/p99 per level (one series per
/// backend), the abort rate per level, a table with the invariant, and a check per level that claims the invariant.
///
/// ```swift
/// let results = try await IsolationExperiment(.quick()).run(on: EmbeddedLabBackend())
/// let section = try IsolationReport.section(results)
/// ```
public enum IsolationReport {
    public static func section(_ results: [IsolationResult], id: String = "isolation") throws -> ReportSection {
        var section = ReportSection(
            id: id, title: "Isolation levels: seed 003's two workloads at each level",
            summary: """
                The read-modify-write of an account record and "add a comment, bump the thread's counter", each at \
                every isolation level on a fresh store per backend; clients run their operations one after another, \
                each a transaction retried on 40001/40P01. Snapshot and serializable claim the invariant (versions = \
                committed updates; comment rows = counter): a break there is a failure.
                """)
        section.checks = checks(results)
        section.blocks.append(.table(table(results)))
        let backends = ReportLists.ordered(results.map(\.backend))
        let several = backends.count > 1
        for workload in IsolationWorkload.allCases {
            let rows = results.filter { $0.workload == workload }
            guard !rows.isEmpty else { continue }
            let levels = ReportLists.ordered(rows.map(\.level.rawValue))
            func value(_ backend: String, _ level: String, _ f: (IsolationResult) -> Double) -> Double? {
                rows.first { $0.backend == backend && $0.level.rawValue == level }.map(f)
            }
            func name(_ backend: String, _ what: String) -> String { several ? "\(backend) \(what)" : what }
            section.blocks.append(
                .chart(
                    ReportChart(
                        id: "\(id)-throughput-\(workload.rawValue)",
                        title: "Throughput per level, \(workload.rawValue)",
                        caption: "Committed operations per second of \(workload.summary), one bar per backend.",
                        kind: .bars(
                            ReportBarChart(
                                categoryAxis: "isolation level",
                                valueAxis: ReportAxis("committed operations", unit: .perSecond), categories: levels,
                                series: backends.map { b in
                                    ReportSeries(b, levels.map { value(b, $0, \.opsPerSecond) })
                                })))))
            section.blocks.append(
                .chart(
                    ReportChart(
                        id: "\(id)-latency-\(workload.rawValue)",
                        title: "Latency percentiles per level, \(workload.rawValue)",
                        caption: "p50 and p99 of one operation from call to return, retries and backoff included.",
                        kind: .bars(
                            ReportBarChart(
                                categoryAxis: "isolation level", valueAxis: ReportAxis("latency", unit: .nanoseconds),
                                categories: levels,
                                series: backends.flatMap { b in
                                    [
                                        ReportSeries(name(b, "p50"), levels.map { value(b, $0, \.p50Nanoseconds) }),
                                        ReportSeries(name(b, "p99"), levels.map { value(b, $0, \.p99Nanoseconds) })
                                    ]
                                })))))
            section.blocks.append(
                .chart(
                    ReportChart(
                        id: "\(id)-aborts-\(workload.rawValue)", title: "Abort rate per level, \(workload.rawValue)",
                        caption: "Aborted attempts (40001/40P01) ÷ all attempts; a level with none draws no bar "
                            + "above zero.",
                        kind: .bars(
                            ReportBarChart(
                                categoryAxis: "isolation level", valueAxis: ReportAxis("abort rate", unit: .fraction),
                                categories: levels,
                                series: backends.map { b in ReportSeries(b, levels.map { value(b, $0, \.abortRate) }) }
                            )))))
        }
        for workload in IsolationWorkload.allCases {
            section.blocks.append(.note("\(workload.rawValue): \(workload.summary); invariant: \(workload.invariant)."))
        }
        section.data = try ReportJSON(encoding: results)
        return section
    }

    /// A level that claims the invariant passes or FAILs; the others are reported for information.
    public static func checks(_ results: [IsolationResult]) -> [ReportCheck] {
        results.map { r in
            let subject = "isolation \(r.workload.rawValue) at \(r.level.rawValue) (\(r.backend))"
            let figures =
                "found \(r.found), expected \(r.expected); committed \(r.committed) of \(r.operations), gave up "
                + "\(r.gaveUp)" + ReportLists.codes(", errors ", r.otherErrors)
            if r.levelPreventsLostUpdates {
                // Judged from the end state itself, not only from the experiment's verdict.
                let held = r.invariantHeld && r.found == r.expected && r.correctness != .fail
                return held
                    ? ReportCheck(.pass, "\(subject) keeps the invariant", figures)
                    : ReportCheck(.fail, "\(subject) claims the invariant", "BROKEN: \(figures)")
            }
            return ReportCheck(
                .info, "\(subject), does not claim the invariant",
                (r.invariantHeld ? "held in this schedule: " : "broken, as expected: ") + figures)
        }
    }

    static func table(_ results: [IsolationResult]) -> ReportTable {
        ReportTable(
            caption: "Throughput, latency, aborts and the invariant per workload, level and backend",
            columns: [
                "workload", "level", "backend", "ops/s", "p50", "p99", "abort rate", "gave up", "invariant"
            ],
            rows: results.map { r in
                [
                    ReportCell(r.workload.rawValue), ReportCell(r.level.rawValue), ReportCell(r.backend),
                    ReportCell(ReportFormat.value(r.opsPerSecond, .perSecond)),
                    ReportCell(ReportFormat.duration(nanoseconds: r.p50Nanoseconds)),
                    ReportCell(ReportFormat.duration(nanoseconds: r.p99Nanoseconds)),
                    ReportCell(ReportFormat.value(r.abortRate, .fraction)), ReportCell("\(r.gaveUp)"),
                    ReportLists.verdict(r.correctness, "\(r.found)/\(r.expected)")
                ]
            })
    }
}

/// The `queue` experiment as a report section: jobs per second per claim mode (one series per backend, with and
/// without a consumer that dies holding a claim), claim-wait percentiles, and an exactly-once check per run.
///
/// ```swift
/// let section = try QueueReport.section(try await QueueExperiment(.quick()).run(on: EmbeddedLabBackend()))
/// ```
public enum QueueReport {
    public static func section(_ results: [QueueResult], id: String = "queue") throws -> ReportSection {
        var section = ReportSection(
            id: id, title: "Job queue: claim modes and exactly-once",
            summary: """
                Seed 004's job queue: producers insert jobs, consumers claim, process and complete them with each \
                claim mode, once with every consumer healthy and once with a consumer that dies holding a claim. \
                Exactly-once is read from the store's end state (a done counter per job): a job lost or processed \
                twice is a failure.
                """)
        section.checks = checks(results)
        let claims = ReportLists.ordered(results.map(\.claim.rawValue))
        let runs = ReportLists.ordered(results.map { run($0) })
        func value(_ name: String, _ claim: String, _ f: (QueueResult) -> Double) -> Double? {
            results.first { run($0) == name && $0.claim.rawValue == claim }.map(f)
        }
        section.blocks.append(
            .table(
                ReportTable(
                    caption: "Jobs per claim mode and backend",
                    columns: [
                        "claim", "backend", "consumer dies", "jobs/s", "claim wait p50", "claim wait p99",
                        "processed once", "lost", "duplicated", "exactly once"
                    ],
                    rows: results.map { r in
                        [
                            ReportCell(r.claim.rawValue), ReportCell(r.backend),
                            ReportCell(
                                r.consumerDied ? (r.diedJobRecovered == true ? "yes, job recovered" : "yes") : "no"),
                            ReportCell(ReportFormat.value(r.jobsPerSecond, .perSecond)),
                            ReportCell(ReportFormat.duration(nanoseconds: r.claimWaitP50Nanoseconds)),
                            ReportCell(ReportFormat.duration(nanoseconds: r.claimWaitP99Nanoseconds)),
                            ReportCell("\(r.processedOnce) of \(r.jobs)"), ReportCell("\(r.lost)"),
                            ReportCell("\(r.duplicated)"),
                            r.exactlyOnce && r.lost == 0 && r.duplicated == 0
                                ? ReportCell("ok", .ok) : ReportCell("FAIL", .fail)
                        ]
                    })))
        section.blocks.append(
            .chart(
                ReportChart(
                    id: "\(id)-throughput", title: "Jobs per second per claim mode",
                    caption: "Jobs completed per second of wall time, per backend, with and without a consumer that "
                        + "dies holding a claim.",
                    kind: .bars(
                        ReportBarChart(
                            categoryAxis: "claim mode", valueAxis: ReportAxis("jobs", unit: .perSecond),
                            categories: claims,
                            series: runs.map { name in
                                ReportSeries(name, claims.map { value(name, $0, \.jobsPerSecond) })
                            })))))
        section.blocks.append(
            .chart(
                ReportChart(
                    id: "\(id)-claim-wait", title: "Claim wait per claim mode",
                    caption: "From when a consumer starts looking until it holds a job (empty polls included), p50 "
                        + "and p99, runs without a dying consumer.",
                    kind: .bars(
                        ReportBarChart(
                            categoryAxis: "claim mode", valueAxis: ReportAxis("claim wait", unit: .nanoseconds),
                            categories: claims,
                            series: runs.filter { !$0.hasSuffix(Self.dies) }.flatMap { name in
                                [
                                    ReportSeries(
                                        "\(name) p50", claims.map { value(name, $0, \.claimWaitP50Nanoseconds) }),
                                    ReportSeries(
                                        "\(name) p99", claims.map { value(name, $0, \.claimWaitP99Nanoseconds) })
                                ]
                            })))))
        for claim in QueueClaim.allCases where claims.contains(claim.rawValue) {
            section.blocks.append(.note("\(claim.rawValue): \(claim.summary)."))
        }
        section.data = try ReportJSON(encoding: results)
        return section
    }

    static let dies = ", a consumer dies"

    static func run(_ r: QueueResult) -> String { r.backend + (r.consumerDied ? dies : "") }

    /// Every claim mode promises exactly-once: one check per run.
    public static func checks(_ results: [QueueResult]) -> [ReportCheck] {
        results.map { r in
            let subject =
                "queue \(r.claim.rawValue) (\(r.backend))\(r.consumerDied ? " with a dying consumer" : "") "
                + "processes every job exactly once"
            let figures =
                "\(r.processedOnce) of \(r.jobs) once, lost \(r.lost), duplicated \(r.duplicated), left "
                + "\(r.leftInQueue)"
                + (r.diedJobRecovered.map { $0 ? ", died job recovered" : ", died job NOT recovered" } ?? "")
            let once = r.exactlyOnce && r.lost == 0 && r.duplicated == 0 && r.processedOnce == r.jobs
            return ReportCheck(once ? .pass : .fail, subject, figures)
        }
    }
}

/// The `write-skew` experiment as a report section: per scenario, the fraction of trials that broke the invariant
/// under each mode (one series per backend), and a check per mode that claims to prevent write skew.
///
/// ```swift
/// let section = try WriteSkewReport.section(try await WriteSkewExperiment(.quick()).run(on: EmbeddedLabBackend()))
/// ```
public enum WriteSkewReport {
    public static func section(_ results: [WriteSkewResult], id: String = "write-skew") throws -> ReportSection {
        var section = ReportSection(
            id: id, title: "Write skew: doctors on call and hotel bookings",
            summary: """
                Each trial: two concurrent transactions check a condition over several rows, pause, and write what \
                the check allowed. Under read committed and snapshot both checks pass and the invariant breaks; \
                serializable and explicit locks claim to prevent it, and a break there is a failure.
                """)
        section.checks = checks(results)
        let backends = ReportLists.ordered(results.map(\.backend))
        let modes = ReportLists.ordered(results.map(\.mode.description))
        section.blocks.append(
            .table(
                ReportTable(
                    caption: "Invariant breaks per scenario, mode and backend",
                    columns: ["scenario", "mode", "backend", "broken", "aborts", "failed", "wall", "verdict"],
                    rows: results.map { r in
                        [
                            ReportCell(r.scenario.rawValue), ReportCell(r.mode.description), ReportCell(r.backend),
                            ReportCell("\(r.broken) of \(r.trials)"),
                            ReportCell(ReportLists.codes("", r.aborts, empty: "–")), ReportCell("\(r.failed)"),
                            ReportCell(ReportFormat.duration(nanoseconds: r.wallSeconds * 1e9)),
                            ReportLists.verdict(r.correctness, "\(r.broken) broken")
                        ]
                    })))
        for scenario in WriteSkewScenario.allCases {
            let rows = results.filter { $0.scenario == scenario }
            guard !rows.isEmpty else { continue }
            section.blocks.append(
                .chart(
                    ReportChart(
                        id: "\(id)-broken-\(scenario.rawValue)", title: "Invariant broken, \(scenario.rawValue)",
                        caption: "Trials whose end state breaks \"\(scenario.invariant)\", ÷ trials, per mode; "
                            + "a mode that never broke it draws no bar above zero.",
                        kind: .bars(
                            ReportBarChart(
                                categoryAxis: "mode", valueAxis: ReportAxis("trials broken", unit: .fraction),
                                categories: modes,
                                series: backends.map { b in
                                    ReportSeries(
                                        b,
                                        modes.map { m in
                                            rows.first { $0.backend == b && $0.mode.description == m }.map {
                                                Double($0.broken) / Double(max($0.trials, 1))
                                            }
                                        })
                                })))))
        }
        section.data = try ReportJSON(encoding: results)
        return section
    }

    /// Serializable and explicit locks pass or FAIL; read committed and snapshot are reported for information.
    public static func checks(_ results: [WriteSkewResult]) -> [ReportCheck] {
        results.map { r in
            let subject = "write-skew \(r.scenario.rawValue) under \(r.mode) (\(r.backend))"
            let figures =
                "\(r.broken) of \(r.trials) trials broke \"\(r.scenario.invariant)\", \(r.failed) transactions "
                + "failed" + ReportLists.codes(", aborts ", r.aborts)
            guard r.mode.preventsWriteSkew else { return ReportCheck(.info, "\(subject), unprotected", figures) }
            return r.broken == 0 && r.correctness != .fail
                ? ReportCheck(.pass, "\(subject) keeps the invariant", figures)
                : ReportCheck(.fail, "\(subject) claims to prevent write skew", "BROKEN: \(figures)")
        }
    }
}

/// The `contention` experiment as a report section: ``ContentionCharts`` of the surface (one set per backend) and
/// a check per strategy that every cell kept counter = rows = committed.
///
/// ```swift
/// let section = try ContentionReport.section(try await ContentionExperiment(.quick()).run(on: EmbeddedLabBackend()))
/// ```
public enum ContentionReport {
    public static func section(_ surfaces: [ContentionSurface], id: String = "contention") throws -> ReportSection {
        var section = ReportSection(
            id: id, title: "Contention: clients × key skew per strategy",
            summary: """
                The lost-update strategies over a grid of concurrent clients and key skew (uniform, or Zipfian with \
                θ), each cell a fresh set of counters: seed 004's claim that optimistic strategies pay while \
                conflicts are rare and pessimistic locking wins under contention. Each cell's counters must equal \
                the committed operations.
                """)
        let backends = ReportLists.ordered(surfaces.map(\.backend))
        for backend in backends {
            let points = surfaces.filter { $0.backend == backend }.flatMap { surface in
                surface.cells.map {
                    ContentionPoint(
                        strategy: $0.strategy.rawValue, clients: $0.clients, skew: skew($0.theta),
                        throughput: $0.opsPerSecond)
                }
            }
            let prefix = backends.count > 1 ? "\(id)-\(backend)" : id
            if backends.count > 1 { section.blocks.append(.note("Backend \(backend):")) }
            section.blocks += ContentionCharts.charts(points, idPrefix: prefix).map { chart in
                var chart = chart
                if backends.count > 1 { chart.title += " (\(backend))" }
                return .chart(chart)
            }
        }
        section.checks = surfaces.map { s in
            let wrong = s.cells.filter { !$0.correct }
            return ReportCheck(
                wrong.isEmpty ? .pass : .fail,
                "contention \(s.strategy.rawValue) (\(s.backend)) loses no update in any cell",
                "\(s.cells.count - wrong.count) of \(s.cells.count) cells exact"
                    + wrong.map { "; WRONG at \($0.clients) clients, \(skew($0.theta))" }.joined())
        }
        section.data = try ReportJSON(encoding: surfaces)
        return section
    }

    static func skew(_ theta: Double) -> String {
        if theta == 0 { return "uniform" }
        let text = String(theta)
        return "zipf " + (text.hasSuffix(".0") ? String(text.dropLast(2)) : text)
    }
}

/// Small helpers the adapters share.
enum ReportLists {
    /// Labels in order of first appearance.
    static func ordered(_ labels: [String]) -> [String] {
        var seen: Set<String> = []
        return labels.filter { seen.insert($0).inserted }
    }

    static func codes(_ prefix: String, _ codes: [String: Int], empty: String = "") -> String {
        codes.isEmpty
            ? empty : prefix + codes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
    }

    static func verdict(_ c: LostUpdateResult.Correctness, _ figures: String) -> ReportCell {
        switch c {
        case .correct: return ReportCell("ok: \(figures)", .ok)
        case .fail: return ReportCell("FAIL: \(figures)", .fail)
        case .brokenAsExpected: return ReportCell("broken (unprotected): \(figures)", .occurs)
        case .unprotectedNoLossThisRun: return ReportCell("held this run (unprotected): \(figures)", .muted)
        }
    }
}
