import ArgumentParser
import Foundation
import IsoKVConformance
import IsoKVCore
import IsoKVLab

/// `isokv lab …`: the seed articles' experiments, run here, with the seeds' published figures beside ours.
struct Lab: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an experiment: what each concurrency strategy prevents and what it costs.",
        subcommands: [LabAnomalies.self, LabLostUpdate.self, LabReportCommand.self]
    )
}

/// `isokv lab anomalies`: the anomaly × isolation level matrix of the embedded engine, beside PostgreSQL's table.
struct LabAnomalies: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anomalies",
        abstract: "Which anomalies each isolation level lets happen on the embedded engine, beside PostgreSQL's table.",
        discussion: """
            Every anomaly replay of the conformance suite runs at every level, each on a fresh in-memory database, \
            its steps ordered by observed lock waits (no sleeps). A cell says whether the anomaly occurred or what \
            prevented it: the snapshot, a transaction waiting for a row lock, or a transaction aborting (with the \
            code). The second table puts the four phenomena of PostgreSQL's documented isolation table beside what \
            the engine did and explains every cell where they differ. Exits with status 1 if a cell differs from the \
            conformance suite's expected table or a difference from PostgreSQL is unexplained.
            """
    )

    @Option(help: "table | json") var format: OutputFormat = .table

    func run() async throws {
        let matrix = await AnomalyMatrix.run(on: EmbeddedLabBackend())
        switch format {
        case .json:
            print(try LabJSON.render(title: "isokv lab anomalies", parameters: ["backend": matrix.backend], matrix))
        case .table:
            print(Self.render(matrix))
        }
        if !matrix.mismatches.isEmpty || !matrix.unexplainedDifferences.isEmpty { throw ExitCode(1) }
    }

    static func render(_ matrix: AnomalyMatrix) -> String {
        var text = "isokv lab anomalies\n  backend: \(matrix.backend) (in-memory)\n\n"
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
            counter; all N run at once, one task each, on a fresh in-memory database per strategy. Correctness: the \
            final counter and the reaction rows must both equal the operations that reported success; a strategy \
            that claims to prevent lost updates and misses is marked FAIL (exit status 1). The seed's published \
            figures (PostgreSQL, Go/pgx, N = 100) are shown beside ours, labelled as such. --seed fixes the order \
            the tasks start in and the backoff jitter; the interleaving is the scheduler's.
            """
    )

    @Option(help: "Concurrent operations (seed 003 ran 100).") var n: Int = 100
    @Option(help: "Fixes the task start order and the backoff jitter.") var seed: UInt64 = 1
    @Option(help: "Time budget per operation of the …-budget strategies, in milliseconds.") var budgetMs: Int = 2_000
    @Option(help: "Owner tasks of the partitioned writer.") var partitions: Int = 4
    @Option(help: "Simulated client-server round trip before each statement, in microseconds (0: none).")
    var statementLatencyUs: Int = 0
    @Option(help: "table | json") var format: OutputFormat = .table

    func validate() throws {
        guard n >= 1, n <= 100_000 else { throw ValidationError("--n must be in 1...100000") }
        guard budgetMs >= 1, budgetMs <= 600_000 else { throw ValidationError("--budget-ms must be in 1...600000") }
        guard partitions >= 1, partitions <= 1_024 else { throw ValidationError("--partitions must be in 1...1024") }
        guard statementLatencyUs >= 0, statementLatencyUs <= 1_000_000 else {
            throw ValidationError("--statement-latency-us must be in 0...1000000")
        }
    }

    func run() async throws {
        let parameters = LostUpdateParameters(
            operations: n, seed: seed, budgetMilliseconds: budgetMs, partitions: partitions,
            statementLatencyMicroseconds: statementLatencyUs)
        let results = try await LostUpdateExperiment(parameters).run()
        let params: [(String, String)] = [
            ("backend", "embedded (in-memory)"), ("n", "\(n)"), ("seed", "\(seed)"), ("budget-ms", "\(budgetMs)"),
            ("partitions", "\(partitions)"), ("statement-latency-us", "\(statementLatencyUs)"),
            ("serializable max attempts", "\(parameters.serializableMaxAttempts)")
        ]
        var report = Report<LostUpdateResult>(
            title: "isokv lab lost-update", parameters: params,
            columns: [
                "strategy", "wall", "ops/s", "p50", "p99", "retries", "gave up", "counter", "rows", "correctness",
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
                    r.strategy.rawValue, Figure.duration(nanoseconds: r.wallSeconds * 1e9), Figure.rate(r.opsPerSecond),
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
                "FAIL: " + failures.map(\.strategy.rawValue).joined(separator: ", ")
                    + " lost updates although they claim to prevent them")
        }
        print(try report.render(format))
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
    static func render<T: Encodable>(title: String, parameters: [String: String], _ result: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let envelope = ReportEnvelope(title: title, parameters: parameters, results: [result])
        return String(decoding: try encoder.encode(envelope), as: UTF8.self)
    }
}
