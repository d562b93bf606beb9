import ArgumentParser
import Foundation
import IsoKVCore
import IsoKVLab
import IsoKVLabBackends

/// The correctness column's words, shared by the experiments.
func verdictText(_ c: LostUpdateResult.Correctness) -> String {
    switch c {
    case .correct: return "ok"
    case .fail: return "FAIL"
    case .brokenAsExpected: return "broken (as expected)"
    case .unprotectedNoLossThisRun: return "held this run (unprotected)"
    }
}

func codesText(_ codes: [String: Int]) -> String {
    codes.isEmpty ? "-" : codes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
}

/// `isokv lab isolation`: seed 003's first benchmark at each isolation level, per backend.
struct LabIsolation: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "isolation",
        abstract: "Seed 003's isolation benchmark: account read-modify-write and add-a-comment at each level.",
        discussion: """
            Two workloads, each at every isolation level on a fresh store per backend: the read-modify-write of an \
            account record (JSON: username, email, version), and adding a comment to a thread while bumping the \
            thread's comment counter. Clients run their operations one after another, each operation one \
            transaction retried on 40001/40P01. Reported: throughput, p50/p99 latency (retries included), abort \
            rate (aborted attempts ÷ attempts) and whether the invariant held (versions = committed updates; \
            comment rows = counter). Snapshot and serializable claim the invariant: a break there is FAIL (exit 1).
            """)

    @OptionGroup var lab: LabOptions
    @Option(help: "Concurrent clients (default 16; --quick 4).") var clients: Int?
    @Option(help: "Operations per workload and level (default 2000; --quick 200).") var operations: Int?
    @Option(help: "Simulated round trip before each statement, in microseconds.") var statementLatencyUs: Int = 0

    func validate() throws {
        if let clients, !(1...1_024).contains(clients) { throw ValidationError("--clients must be in 1...1024") }
        if let operations, !(1...10_000_000).contains(operations) {
            throw ValidationError("--operations must be in 1...10000000")
        }
        guard (0...1_000_000).contains(statementLatencyUs) else {
            throw ValidationError("--statement-latency-us must be in 0...1000000")
        }
    }

    func run() async throws {
        let specs = try lab.specs()
        var p = lab.quick ? IsolationParameters.quick(seed: lab.seed) : IsolationParameters(seed: lab.seed)
        if let clients { p.clients = clients }
        if let operations { p.operations = operations }
        p.statementLatencyMicroseconds = statementLatencyUs
        let progress = LabProgress()
        let experiment = IsolationExperiment(p, progress: progress)
        var results: [IsolationResult] = []
        try await ProgressBar.run(progress) {
            for spec in specs { results += try await experiment.run(on: try spec.backend()) }
        }
        var report = Report<IsolationResult>(
            title: "isokv lab isolation",
            parameters: lab.parameterLines(specs) + [
                ("clients", "\(p.clients)"), ("operations per cell", "\(p.operations)"),
                ("accounts", "\(p.accounts)"), ("threads", "\(p.threads)"), ("max attempts", "\(p.maxAttempts)"),
                ("statement-latency-us", "\(p.statementLatencyMicroseconds)")
            ],
            columns: [
                "backend", "workload", "level", "ops/s", "p50", "p99", "abort rate", "aborts", "gave up",
                "invariant", "correctness"
            ])
        for r in results {
            report.add(
                [
                    r.backend, r.workload.rawValue, r.level.rawValue, Figure.rate(r.opsPerSecond),
                    Figure.duration(nanoseconds: r.p50Nanoseconds), Figure.duration(nanoseconds: r.p99Nanoseconds),
                    String(format: "%.1f%%", r.abortRate * 100), codesText(r.aborts), "\(r.gaveUp)",
                    r.invariantHeld ? "held (\(r.found)/\(r.expected))" : "BROKEN (\(r.found)/\(r.expected))",
                    verdictText(r.correctness)
                ], r)
        }
        report.notes.append("")
        for w in IsolationWorkload.allCases {
            report.notes.append("  \(w.rawValue): \(w.summary); invariant: \(w.invariant)")
        }
        report.notes.append(
            "seed 003 (published, PostgreSQL, Go/pgx): read committed and repeatable read about the same; "
                + "serializable \"drops a little\" (it gives a chart, no figures).")
        let failures = results.filter { $0.correctness == .fail }
        for f in failures {
            report.notes.append(
                "FAIL: \(f.workload.rawValue) at \(f.level.rawValue) on \(f.backend) broke its invariant")
        }
        print(try report.render(lab.format))
        if !failures.isEmpty { throw ExitCode(1) }
    }
}

/// `isokv lab queue`: seed 004's job queue with each claim mode, exactly-once verified.
struct LabQueue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Seed 004's job queue: SKIP LOCKED vs FOR UPDATE vs optimistic claims, exactly-once verified.",
        discussion: """
            M producers insert jobs; consumers claim the oldest with FOR UPDATE SKIP LOCKED, with FOR UPDATE \
            (waiting), or optimistically by version with a lease; each job's work is simulated (a sleep) while the \
            claim is held. Each mode runs twice: normally, and with one consumer dying holding a claim (its \
            transaction rolls back, or its lease lapses). Exactly-once is verified from the store: every job's done \
            counter is 1, the queue is empty, the dead consumer's job was finished by another. A miss exits 1.
            """)

    @OptionGroup var lab: LabOptions
    @Option(help: "Producers.") var producers: Int = 2
    @Option(help: "Consumers (seed 004: 5).") var consumers: Int = 5
    @Option(help: "Jobs (default 500; --quick 60).") var jobs: Int?
    @Option(help: "Simulated work per job, in microseconds.") var workUs: Int = 200

    func validate() throws {
        guard (1...64).contains(producers) else { throw ValidationError("--producers must be in 1...64") }
        guard (1...256).contains(consumers) else { throw ValidationError("--consumers must be in 1...256") }
        if let jobs, !(1...1_000_000).contains(jobs) { throw ValidationError("--jobs must be in 1...1000000") }
        guard (0...1_000_000).contains(workUs) else { throw ValidationError("--work-us must be in 0...1000000") }
    }

    func run() async throws {
        let specs = try lab.specs()
        var p = lab.quick ? QueueParameters.quick(seed: lab.seed) : QueueParameters(seed: lab.seed)
        p.producers = producers
        p.consumers = consumers
        if let jobs { p.jobs = jobs }
        p.workMicroseconds = workUs
        let progress = LabProgress()
        let experiment = QueueExperiment(p, progress: progress)
        var results: [QueueResult] = []
        try await ProgressBar.run(progress) {
            for spec in specs { results += try await experiment.run(on: try spec.backend()) }
        }
        var report = Report<QueueResult>(
            title: "isokv lab queue",
            parameters: lab.parameterLines(specs) + [
                ("producers", "\(p.producers)"), ("consumers", "\(p.consumers)"), ("jobs", "\(p.jobs)"),
                ("work-us", "\(p.workMicroseconds)"), ("lease-ms (optimistic)", "\(p.leaseMilliseconds)")
            ],
            columns: [
                "backend", "claim", "consumer dies", "jobs/s", "claim wait p50", "p99", "empty polls", "conflicts",
                "errors", "once/lost/twice", "exactly once"
            ])
        for r in results {
            report.add(
                [
                    r.backend, r.claim.rawValue,
                    r.consumerDied ? (r.diedJobRecovered == true ? "yes, job recovered" : "yes, NOT recovered") : "no",
                    Figure.rate(r.jobsPerSecond), Figure.duration(nanoseconds: r.claimWaitP50Nanoseconds),
                    Figure.duration(nanoseconds: r.claimWaitP99Nanoseconds), "\(r.emptyPolls)", "\(r.claimConflicts)",
                    codesText(r.errors), "\(r.processedOnce)/\(r.lost)/\(r.duplicated)", r.exactlyOnce ? "ok" : "FAIL"
                ], r)
        }
        report.notes.append("")
        for c in QueueClaim.allCases { report.notes.append("  \(c.rawValue): \(c.summary)") }
        let failures = results.filter { !$0.exactlyOnce }
        for f in failures {
            report.notes.append(
                "FAIL: \(f.claim.rawValue) on \(f.backend)\(f.consumerDied ? " with a dying consumer" : ""): "
                    + "\(f.processedOnce) once, \(f.lost) lost, \(f.duplicated) twice, \(f.leftInQueue) left")
        }
        print(try report.render(lab.format))
        if !failures.isEmpty { throw ExitCode(1) }
    }
}

/// `isokv lab write-skew`: the doctors on call and the hotel booking under each level and with explicit locks.
struct LabWriteSkew: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write-skew",
        abstract: "Doctors on call and hotel booking: how often write skew breaks the invariant, per level.",
        discussion: """
            Each trial: two transactions at once, each checking rows (the doctors on call; the room's bookings), \
            pausing (--think-us), then writing what the check allowed. Modes: read committed, snapshot, \
            serializable (retried on 40001/40P01), and read committed with explicit locks (the shift's doctor rows \
            FOR UPDATE; the room's row FOR UPDATE, since an empty range has no row to lock). Serializable and the \
            locks claim the invariant: a break there is FAIL (exit 1).
            """)

    @OptionGroup var lab: LabOptions
    @Option(help: "Trials per scenario and mode (default 100; --quick 20).") var trials: Int?
    @Option(help: "Pause between check and write, in microseconds.") var thinkUs: Int = 1_000

    func validate() throws {
        if let trials, !(1...100_000).contains(trials) { throw ValidationError("--trials must be in 1...100000") }
        guard (0...1_000_000).contains(thinkUs) else { throw ValidationError("--think-us must be in 0...1000000") }
    }

    func run() async throws {
        let specs = try lab.specs()
        var p = lab.quick ? WriteSkewParameters.quick(seed: lab.seed) : WriteSkewParameters(seed: lab.seed)
        if let trials { p.trials = trials }
        p.thinkMicroseconds = thinkUs
        let progress = LabProgress()
        let experiment = WriteSkewExperiment(p, progress: progress)
        var results: [WriteSkewResult] = []
        try await ProgressBar.run(progress) {
            for spec in specs { results += try await experiment.run(on: try spec.backend()) }
        }
        var report = Report<WriteSkewResult>(
            title: "isokv lab write-skew",
            parameters: lab.parameterLines(specs) + [
                ("trials", "\(p.trials)"), ("think-us", "\(p.thinkMicroseconds)"), ("max attempts", "\(p.maxAttempts)")
            ],
            columns: ["backend", "scenario", "mode", "broken", "aborts", "failed", "wall", "correctness"])
        for r in results {
            report.add(
                [
                    r.backend, r.scenario.rawValue, r.mode.description, "\(r.broken)/\(r.trials)", codesText(r.aborts),
                    "\(r.failed)", Figure.duration(nanoseconds: r.wallSeconds * 1e9), verdictText(r.correctness)
                ], r)
        }
        report.notes.append("")
        for s in WriteSkewScenario.allCases { report.notes.append("  \(s.rawValue): \(s.invariant)") }
        let failures = results.filter { $0.correctness == .fail }
        for f in failures {
            report.notes.append("FAIL: \(f.scenario.rawValue) \(f.mode) on \(f.backend) broke \(f.broken) times")
        }
        print(try report.render(lab.format))
        if !failures.isEmpty { throw ExitCode(1) }
    }
}

/// `isokv lab contention`: clients × key skew for the lost-update strategies, as a surface per strategy.
struct LabContention: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contention",
        abstract: "Clients × key skew for the lost-update strategies: where optimistic strategies stop paying.",
        discussion: """
            Each cell: C clients share the operations, each adding a reaction to a counter chosen uniformly (θ = 0) \
            or by a Zipfian law of skew θ among the counters, with one lost-update strategy. Per cell: throughput, \
            abort rate (failed attempts ÷ attempts) and give-up rate; every cell's end state is checked (counters' \
            sum = reaction rows = committed; a miss is FAIL, exit 1). JSON: one surface per strategy and backend \
            (opsPerSecond[clients][θ]), ready for a chart.
            """)

    @OptionGroup var lab: LabOptions
    @Option(help: "Clients axis, comma-separated (default 1,4,16,64,256; --quick 1,8,32).") var clients: String?
    @Option(help: "Skew axis, comma-separated θ, 0 = uniform (default 0,0.5,0.99,1.2; --quick 0,1.2).")
    var thetas: String?
    @Option(help: "Strategies, comma-separated (default: every one that claims to prevent lost updates).")
    var strategies: String?
    @Option(help: "Counters chosen from (default 64; --quick 16).") var counters: Int?
    @Option(help: "Operations per cell (default 2000; --quick 160).") var operations: Int?

    func parameters() throws -> ContentionParameters {
        var p = lab.quick ? ContentionParameters.quick(seed: lab.seed) : ContentionParameters(seed: lab.seed)
        if let clients {
            p.clients = try clients.split(separator: ",").map {
                guard let n = Int($0.trimmingCharacters(in: .whitespaces)), (1...4_096).contains(n) else {
                    throw ValidationError("--clients: \"\($0)\" is not a number in 1...4096")
                }
                return n
            }
        }
        if let thetas {
            p.thetas = try thetas.split(separator: ",").map {
                guard let t = Double($0.trimmingCharacters(in: .whitespaces)), t >= 0, t <= 5 else {
                    throw ValidationError("--thetas: \"\($0)\" is not a number in 0...5")
                }
                return t
            }
        }
        if let strategies {
            p.strategies = try strategies.split(separator: ",").map {
                guard let s = LostUpdateStrategy(rawValue: $0.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError(
                        "--strategies: unknown \"\($0)\"; one of "
                            + LostUpdateStrategy.allCases.map(\.rawValue).joined(separator: ", "))
                }
                return s
            }
        }
        if let counters {
            guard (1...100_000).contains(counters) else { throw ValidationError("--counters must be in 1...100000") }
            p.counters = counters
        }
        if let operations {
            guard (1...10_000_000).contains(operations) else {
                throw ValidationError("--operations must be in 1...10000000")
            }
            p.operations = operations
        }
        guard !p.clients.isEmpty, !p.thetas.isEmpty, !p.strategies.isEmpty else {
            throw ValidationError("every axis needs at least one value")
        }
        return p
    }

    func validate() throws { _ = try parameters() }

    func run() async throws {
        let specs = try lab.specs()
        let p = try parameters()
        let progress = LabProgress()
        let experiment = ContentionExperiment(p, progress: progress)
        var surfaces: [ContentionSurface] = []
        try await ProgressBar.run(progress) {
            for spec in specs { surfaces += try await experiment.run(on: try spec.backend()) }
        }
        var report = Report<ContentionSurface>(
            title: "isokv lab contention",
            parameters: lab.parameterLines(specs) + [
                ("clients", p.clients.map(String.init).joined(separator: ",")),
                ("thetas", p.thetas.map { "\($0)" }.joined(separator: ",")), ("counters", "\(p.counters)"),
                ("operations per cell", "\(p.operations) (at least 4 per client)"),
                ("budget-ms", "\(p.budgetMilliseconds)")
            ],
            columns: ["backend", "strategy"] + p.thetas.map { "θ=\($0) ops/s (abort%, give-up%)" }.map { $0 })
        var failures: [ContentionCell] = []
        for s in surfaces {
            for (i, c) in s.clients.enumerated() {
                report.add(
                    [s.backend, "\(s.strategy.rawValue) ×\(c)"]
                        + s.thetas.indices.map { j in
                            let cell = s.cells[i * s.thetas.count + j]
                            if !cell.correct { failures.append(cell) }
                            return
                                "\(Figure.rate(cell.opsPerSecond)) (\(String(format: "%.0f", cell.abortRate * 100))%, "
                                + "\(String(format: "%.0f", cell.giveUpRate * 100))%)\(cell.correct ? "" : " FAIL")"
                        },
                    s)
            }
        }
        // The JSON holds each surface once.
        if lab.format == .json {
            var unique = report
            unique.rows = []
            unique.records = []
            for s in surfaces {
                unique.rows.append(Array(repeating: "", count: report.columns.count)); unique.records.append(s)
            }
            report = unique
        }
        report.notes.append("×C = C clients; θ = 0 is uniform over the counters, otherwise Zipfian.")
        for f in failures {
            report.notes.append(
                "FAIL: \(f.strategy.rawValue) on \(f.backend), \(f.clients) clients, θ=\(f.theta): end state wrong")
        }
        print(try report.render(lab.format))
        if !failures.isEmpty { throw ExitCode(1) }
    }
}
