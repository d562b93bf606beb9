import ArgumentParser
import Foundation
import IsoKVConformance
import IsoKVCore
import IsoKVLab
import IsoKVLabBackends

/// `isokv lab …`: the seed articles' experiments, run here, with the seeds' published figures beside ours.
struct Lab: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an experiment: what each concurrency strategy prevents and what it costs.",
        subcommands: [
            LabAnomalies.self, LabLostUpdate.self, LabIsolation.self, LabQueue.self, LabWriteSkew.self,
            LabContention.self, LabMaps.self, LabBaseline.self, LabReportCommand.self
        ]
    )
}

/// `isokv lab anomalies`: the anomaly × isolation level matrix of the embedded engine, beside PostgreSQL's table.
struct LabAnomalies: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anomalies",
        abstract: "Which anomalies each isolation level lets happen on each backend, beside PostgreSQL's table.",
        discussion: """
            Every anomaly replay of the conformance suite runs at every level, each on a fresh store (an in-memory \
            database, a fresh PostgreSQL schema, a fresh in-process HTTP server), \
            its steps ordered by observed lock waits (no sleeps). A cell says whether the anomaly occurred or what \
            prevented it: the snapshot, a transaction waiting for a row lock, or a transaction aborting (with the \
            code). The second table puts the four phenomena of PostgreSQL's documented isolation table beside what \
            the engine did and explains every cell where they differ. Exits with status 1 if a cell differs from the \
            conformance suite's expected table or a difference from PostgreSQL is unexplained.
            """
    )

    @OptionGroup var lab: LabOptions

    func run() async throws {
        let specs = try lab.specs()
        for spec in specs where !spec.isolatesRuns {
            throw ValidationError(
                "anomalies needs a fresh store per replay; \(spec.description) is shared (use --backend http for an "
                    + "in-process server)")
        }
        let progress = LabProgress()
        progress.plan(specs.count, "anomalies")
        var matrices: [AnomalyMatrix] = []
        try await ProgressBar.run(progress) {
            for spec in specs {
                progress.label("anomalies on \(spec.name)")
                matrices.append(await Self.matrix(on: try spec.backend()))
                progress.advance()
            }
        }
        switch lab.format {
        case .json:
            print(
                try LabJSON.render(
                    title: "isokv lab anomalies",
                    parameters: Dictionary(lab.parameterLines(specs), uniquingKeysWith: { $1 }), matrices))
        case .table:
            print(matrices.map(Self.render).joined(separator: "\n"))
        }
        if matrices.contains(where: { !$0.mismatches.isEmpty || !$0.unexplainedDifferences.isEmpty }) {
            throw ExitCode(1)
        }
    }

    static func matrix(on backend: some LabBackend) async -> AnomalyMatrix { await AnomalyMatrix.run(on: backend) }

    static func render(_ matrix: AnomalyMatrix) -> String {
        var text = "isokv lab anomalies\n  backend: \(matrix.backend)\n\n"
        text += "Anomaly × isolation level (\(matrix.backend)):\n"
        var anomalies = TextTable(columns: ["anomaly"] + matrix.levels.map(\.rawValue))
        for replay in AnomalyMatrix.replays {
            anomalies.add(
                [replay.name]
                    + matrix.levels.map { level in
                        guard let cell = matrix.cell(replay, at: level) else { return "n/a" }
                        return cell.matchesExpected
                            ? cell.outcome.description : "✗ \(cell.outcome) (expected \(cell.expected))"
                    })
        }
        text += anomalies.render()
        text += "\nPostgreSQL's documented table (its manual, Transaction Isolation) beside \(matrix.backend):\n"
        var comparison = TextTable(columns: ["phenomenon", "level", "PostgreSQL (manual)", matrix.backend, "same?"])
        for row in matrix.comparison {
            comparison.add([
                row.phenomenon.title, row.level == .snapshot ? "snapshot (repeatable read)" : row.level.rawValue,
                row.postgres.text, row.outcome.description,
                row.differs ? "differs" : "same"
            ])
        }
        text += comparison.render()
        text += "  (serialization anomaly: the write-skew replay; \"same\" compares whether the phenomenon shows.)\n"
        let differing = matrix.comparison.filter(\.differs)
        if !differing.isEmpty {
            text += "\nWhere \(matrix.backend) differs from PostgreSQL:\n"
            for row in differing {
                text +=
                    "  \(row.phenomenon.title) at \(row.level.rawValue): "
                    + (row.explanation ?? "UNEXPLAINED: \(row.outcome) here, \(row.postgres.text) in PostgreSQL") + "\n"
            }
        }
        let mismatches = matrix.mismatches
        text +=
            "\n\(matrix.cells.count - mismatches.count) of \(matrix.cells.count) cells as the conformance suite expects"
        text += mismatches.isEmpty ? ".\n" : "; MISMATCHED:\n"
        for cell in mismatches { text += "  ✗ \(cell.replay) at \(cell.level.rawValue): \(cell.detail)\n" }
        return text
    }
}

/// `isokv lab lost-update`: seed 003's second benchmark with every strategy, and the correctness column.
struct LabLostUpdate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lost-update",
        abstract: "N concurrent \"add a reaction to a thread\" operations with each lost-update strategy.",
        discussion: """
            Each operation reads the user's account, inserts its reaction row and adds one to the thread's reaction \
            counter; all N run at once, one task each, on a fresh store of each backend per strategy. Correctness: the \
            final counter and the reaction rows must both equal the operations that reported success; a strategy \
            that claims to prevent lost updates and misses is marked FAIL (exit status 1). The seed's published \
            figures (PostgreSQL, Go/pgx, N = 100) are shown beside ours, labelled as such. --seed fixes the order \
            the tasks start in and the backoff jitter; the interleaving is the scheduler's.
            """
    )

    @OptionGroup var lab: LabOptions
    @Option(help: "Concurrent operations (seed 003 ran 100; --quick: 20).") var n: Int?
    @Option(help: "Time budget per operation of the …-budget strategies, in milliseconds.") var budgetMs: Int = 2_000
    @Option(help: "Owner tasks of the partitioned writer.") var partitions: Int = 4
    @Option(help: "Simulated client-server round trip before each statement, in microseconds (0: none).")
    var statementLatencyUs: Int = 0

    var operations: Int { n ?? (lab.quick ? 20 : 100) }

    func validate() throws {
        guard operations >= 1, operations <= 100_000 else { throw ValidationError("--n must be in 1...100000") }
        guard budgetMs >= 1, budgetMs <= 600_000 else { throw ValidationError("--budget-ms must be in 1...600000") }
        guard partitions >= 1, partitions <= 1_024 else { throw ValidationError("--partitions must be in 1...1024") }
        guard statementLatencyUs >= 0, statementLatencyUs <= 1_000_000 else {
            throw ValidationError("--statement-latency-us must be in 0...1000000")
        }
    }

    func run() async throws {
        let specs = try lab.specs()
        let parameters = LostUpdateParameters(
            operations: operations, seed: lab.seed, budgetMilliseconds: budgetMs, partitions: partitions,
            statementLatencyMicroseconds: statementLatencyUs)
        let progress = LabProgress()
        let experiment = LostUpdateExperiment(parameters, progress: progress)
        var results: [LostUpdateResult] = []
        try await ProgressBar.run(progress) {
            for spec in specs {
                results += try await experiment.run(LostUpdateStrategy.allCases, on: try spec.backend())
            }
        }
        let params: [(String, String)] =
            lab.parameterLines(specs) + [
                ("n", "\(operations)"), ("budget-ms", "\(budgetMs)"),
                ("partitions", "\(partitions)"), ("statement-latency-us", "\(statementLatencyUs)"),
                ("serializable max attempts", "\(parameters.serializableMaxAttempts)")
            ]
        var report = Report<LostUpdateResult>(
            title: "isokv lab lost-update", parameters: params,
            columns: [
                "backend", "strategy", "wall", "ops/s", "p50", "p99", "retries", "gave up", "counter", "rows",
                "correctness",
                "seed 003 (PostgreSQL)"
            ])
        for r in results {
            var verdict: String
            switch r.correctness {
            case .correct: verdict = "ok \(r.finalCounter)/\(r.committed) committed"
            case .fail:
                verdict = "FAIL: counter \(r.finalCounter), rows \(r.reactionRows), committed \(r.committed)"
            case .brokenAsExpected: verdict = "broken: lost \(r.lostUpdates) of \(r.committed)"
            case .unprotectedNoLossThisRun: verdict = "no loss this run (unprotected)"
            }
            if !r.otherErrors.isEmpty {
                verdict +=
                    "; errors "
                    + r.otherErrors.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }
                    .joined(separator: " ")
            }
            report.add(
                [
                    r.backend, r.strategy.rawValue, Figure.duration(nanoseconds: r.wallSeconds * 1e9),
                    Figure.rate(r.opsPerSecond),
                    Figure.duration(nanoseconds: r.p50Nanoseconds), Figure.duration(nanoseconds: r.p99Nanoseconds),
                    "\(r.retries)", "\(r.gaveUp)", "\(r.finalCounter)", "\(r.reactionRows)", verdict,
                    r.seedPublished.map { "\($0.rows) rows, \($0.milliseconds) ms" } ?? "-"
                ], r)
        }
        report.notes.append("")
        for strategy in LostUpdateStrategy.allCases {
            report.notes.append("  \(strategy.rawValue): \(strategy.summary)")
        }
        report.notes.append(
            "counter and rows must equal the committed operations; gave up = out of tries or time (not a lost update).")
        report.notes.append(
            "seed 003 (published, not measured here; PostgreSQL, Go/pgx, 100 reactions, wall time of the test):")
        for strategy in LostUpdateStrategy.allCases {
            if let figure = strategy.seedPublished { report.notes.append("  \(figure.wording)") }
        }
        let failures = results.filter { $0.correctness == .fail }
        if !failures.isEmpty {
            report.notes.append(
                "FAIL: " + failures.map { "\($0.strategy.rawValue) on \($0.backend)" }.joined(separator: ", ")
                    + " lost updates although they claim to prevent them")
        }
        print(try report.render(lab.format))
        if !failures.isEmpty { throw ExitCode(1) }
    }
}

/// A plain aligned table (the anomaly matrices: several tables in one report).
struct TextTable {
    var columns: [String]
    var rows: [[String]] = []

    mutating func add(_ cells: [String]) { rows.append(cells) }

    func render() -> String {
        var widths = columns.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        var out = "  " + line(columns) + "\n"
        out += "  " + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for row in rows { out += "  " + line(row) + "\n" }
        return out
    }
}

/// JSON in the envelope every report uses, for one result object.
enum LabJSON {
    static func render<T: Encodable>(title: String, parameters: [String: String], _ results: [T]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let envelope = ReportEnvelope(title: title, parameters: parameters, results: results)
        return String(decoding: try encoder.encode(envelope), as: UTF8.self)
    }
}
