/// What `isokv lab report` runs with.
public struct LabReportOptions: Hashable, Sendable, Codable {
    /// Small N and short budgets: a report in seconds (what the test command renders).
    public var quick: Bool
    /// Fixes every experiment's schedule where the experiment allows it.
    public var seed: UInt64
    /// The `lost-update` experiment's parameters (its `seed` is ``seed``).
    public var lostUpdate: LostUpdateParameters

    /// `operations` defaults to 100 (the seed's N), 20 with `quick`; the budget to 2 s, 500 ms with `quick`.
    public init(quick: Bool = false, seed: UInt64 = 1, operations: Int? = nil, statementLatencyMicroseconds: Int = 0) {
        self.quick = quick
        self.seed = seed
        lostUpdate = LostUpdateParameters(
            operations: operations ?? (quick ? 20 : 100), seed: seed, budgetMilliseconds: quick ? 500 : 2_000,
            statementLatencyMicroseconds: statementLatencyMicroseconds)
    }
}

/// One experiment the report runs. Adding an experiment to the report is one conforming type (run it, then hand
/// its `Codable` results to an adapter that draws the section) appended to ``LabReportRunner/standard``.
public protocol LabReportExperiment: Sendable {
    /// As `isokv lab <name>` spells it.
    var name: String { get }
    /// The parameters it runs with under `options`, shown in the report.
    func parameters(_ options: LabReportOptions) -> [ReportParameter]
    /// Runs the experiment and draws its section.
    func section(_ options: LabReportOptions) async throws -> ReportSection
}

/// A backend the report runs its experiments on.
///
/// ```swift
/// let runner = LabReportRunner(experiments: LabReportRunner.standard(on: [.embedded]))
/// ```
public struct LabReportBackend: Sendable {
    /// The name results carry (`embedded`, `postgresql`, `http`).
    public var name: String
    /// How the parameters describe it (no passwords).
    public var description: String
    /// Whether every run gets a store nobody else uses (the anomaly replays need it).
    public var isolatesRuns: Bool
    public var backend: any LabBackend

    public init(name: String, description: String, isolatesRuns: Bool = true, backend: any LabBackend) {
        self.name = name
        self.description = description
        self.isolatesRuns = isolatesRuns
        self.backend = backend
    }

    /// The embedded engine, in memory.
    public static let embedded = LabReportBackend(
        name: "embedded", description: "embedded (in-memory)", backend: EmbeddedLabBackend())
}

func backendsParameter(_ experiment: String, _ backends: [LabReportBackend]) -> ReportParameter {
    ReportParameter("\(experiment): backends", backends.map(\.description).joined(separator: "; "))
}

/// The `anomalies` experiment: one coloured matrix per backend that gives every replay a fresh store.
public struct AnomaliesReportExperiment: LabReportExperiment {
    public let name = "anomalies"
    public var backends: [LabReportBackend]

    public init(on backends: [LabReportBackend] = [.embedded]) { self.backends = backends }

    public func parameters(_ options: LabReportOptions) -> [ReportParameter] {
        [backendsParameter(name, backends)]
    }

    public func section(_ options: LabReportOptions) async throws -> ReportSection {
        var matrices: [AnomalyMatrix] = []
        for b in backends where b.isolatesRuns { matrices.append(await AnomalyMatrix.run(on: b.backend)) }
        let skipped = backends.filter { !$0.isolatesRuns }.map(\.description)
        return try AnomalyMatrix.reportSection(
            matrices,
            notes: skipped.map {
                "Not run on \($0): the replays need a fresh store each, and a shared server only gives a fresh "
                    + "key prefix."
            })
    }
}

/// The `lost-update` experiment: every strategy on every backend.
public struct LostUpdateReportExperiment: LabReportExperiment {
    public let name = "lost-update"
    public var backends: [LabReportBackend]

    public init(on backends: [LabReportBackend] = [.embedded]) { self.backends = backends }

    public func parameters(_ options: LabReportOptions) -> [ReportParameter] {
        let p = options.lostUpdate
        return [
            backendsParameter(name, backends),
            ReportParameter("lost-update: n (concurrent operations)", "\(p.operations)"),
            ReportParameter("lost-update: budget per operation", "\(p.budgetMilliseconds) ms"),
            ReportParameter("lost-update: serializable max attempts", "\(p.serializableMaxAttempts)"),
            ReportParameter("lost-update: partitions / max batch", "\(p.partitions) / \(p.maxBatch)"),
            ReportParameter("lost-update: simulated round trip per statement", "\(p.statementLatencyMicroseconds) µs")
        ]
    }

    public func section(_ options: LabReportOptions) async throws -> ReportSection {
        var runs: [LostUpdateReport.Run] = []
        for b in backends {
            let results = try await LostUpdateExperiment(options.lostUpdate).run(
                LostUpdateStrategy.allCases, on: b.backend)
            runs.append(LostUpdateReport.Run(backend: b.name, parameters: options.lostUpdate, results: results))
        }
        return try LostUpdateReport.section(runs)
    }
}

/// The `isolation` experiment: both workloads at every level on every backend.
public struct IsolationReportExperiment: LabReportExperiment {
    public let name = "isolation"
    public var backends: [LabReportBackend]

    public init(on backends: [LabReportBackend] = [.embedded]) { self.backends = backends }

    func parameters(for options: LabReportOptions) -> IsolationParameters {
        options.quick ? .quick(seed: options.seed) : IsolationParameters(seed: options.seed)
    }

    public func parameters(_ options: LabReportOptions) -> [ReportParameter] {
        let p = parameters(for: options)
        return [
            backendsParameter(name, backends),
            ReportParameter("isolation: clients / operations per cell", "\(p.clients) / \(p.operations)"),
            ReportParameter("isolation: accounts / threads", "\(p.accounts) / \(p.threads)"),
            ReportParameter("isolation: levels", p.levels.map(\.rawValue).joined(separator: ", ")),
            ReportParameter("isolation: max attempts", "\(p.maxAttempts)")
        ]
    }

    public func section(_ options: LabReportOptions) async throws -> ReportSection {
        let experiment = IsolationExperiment(parameters(for: options))
        var results: [IsolationResult] = []
        for b in backends { results += try await experiment.run(on: b.backend) }
        return try IsolationReport.section(results)
    }
}

/// The `queue` experiment: every claim mode, with and without a dying consumer, on every backend.
public struct QueueReportExperiment: LabReportExperiment {
    public let name = "queue"
    public var backends: [LabReportBackend]

    public init(on backends: [LabReportBackend] = [.embedded]) { self.backends = backends }

    func parameters(for options: LabReportOptions) -> QueueParameters {
        options.quick ? .quick(seed: options.seed) : QueueParameters(seed: options.seed)
    }

    public func parameters(_ options: LabReportOptions) -> [ReportParameter] {
        let p = parameters(for: options)
        return [
            backendsParameter(name, backends),
            ReportParameter("queue: producers / consumers / jobs", "\(p.producers) / \(p.consumers) / \(p.jobs)"),
            ReportParameter(
                "queue: work per job / poll / lease",
                "\(p.workMicroseconds) µs / \(p.pollMicroseconds) µs / \(p.leaseMilliseconds) ms")
        ]
    }

    public func section(_ options: LabReportOptions) async throws -> ReportSection {
        let experiment = QueueExperiment(parameters(for: options))
        var results: [QueueResult] = []
        for b in backends { results += try await experiment.run(on: b.backend) }
        return try QueueReport.section(results)
    }
}

/// The `write-skew` experiment: both scenarios under every mode on every backend.
public struct WriteSkewReportExperiment: LabReportExperiment {
    public let name = "write-skew"
    public var backends: [LabReportBackend]

    public init(on backends: [LabReportBackend] = [.embedded]) { self.backends = backends }

    func parameters(for options: LabReportOptions) -> WriteSkewParameters {
        options.quick ? .quick(seed: options.seed) : WriteSkewParameters(seed: options.seed)
    }

    public func parameters(_ options: LabReportOptions) -> [ReportParameter] {
        let p = parameters(for: options)
        return [
            backendsParameter(name, backends),
            ReportParameter("write-skew: trials per scenario and mode", "\(p.trials)"),
            ReportParameter("write-skew: pause between check and write", "\(p.thinkMicroseconds) µs")
        ]
    }

    public func section(_ options: LabReportOptions) async throws -> ReportSection {
        let experiment = WriteSkewExperiment(parameters(for: options))
        var results: [WriteSkewResult] = []
        for b in backends { results += try await experiment.run(on: b.backend) }
        return try WriteSkewReport.section(results)
    }
}

/// The `contention` experiment: the clients × skew sweep on every backend (a small grid with `quick`).
public struct ContentionReportExperiment: LabReportExperiment {
    public let name = "contention"
    public var backends: [LabReportBackend]

    public init(on backends: [LabReportBackend] = [.embedded]) { self.backends = backends }

    func parameters(for options: LabReportOptions) -> ContentionParameters {
        options.quick ? .quick(seed: options.seed) : ContentionParameters(seed: options.seed)
    }

    public func parameters(_ options: LabReportOptions) -> [ReportParameter] {
        let p = parameters(for: options)
        return [
            backendsParameter(name, backends),
            ReportParameter("contention: clients", p.clients.map(String.init).joined(separator: ", ")),
            ReportParameter("contention: skews (θ, 0 = uniform)", p.thetas.map { "\($0)" }.joined(separator: ", ")),
            ReportParameter("contention: counters / operations per cell", "\(p.counters) / \(p.operations)")
        ]
    }

    public func section(_ options: LabReportOptions) async throws -> ReportSection {
        let experiment = ContentionExperiment(parameters(for: options))
        var surfaces: [ContentionSurface] = []
        for b in backends { surfaces += try await experiment.run(on: b.backend) }
        return try ContentionReport.section(surfaces)
    }
}

/// Runs experiments one after another and assembles the report.
///
/// ```swift
/// let report = try await LabReportRunner().run(LabReportOptions(quick: true)) { print("running", $0) }
/// print(report.failures.isEmpty ? "all guarantees held" : "FAIL")
/// ```
public struct LabReportRunner: Sendable {
    /// Every experiment the report knows, in the order the page shows them, on `backends`.
    public static func standard(on backends: [LabReportBackend]) -> [any LabReportExperiment] {
        [
            LostUpdateReportExperiment(on: backends), AnomaliesReportExperiment(on: backends),
            IsolationReportExperiment(on: backends), WriteSkewReportExperiment(on: backends),
            QueueReportExperiment(on: backends), ContentionReportExperiment(on: backends)
        ]
    }

    /// ``standard(on:)`` on the embedded engine.
    public static var standard: [any LabReportExperiment] { standard(on: [.embedded]) }

    public var experiments: [any LabReportExperiment]

    public init(experiments: [any LabReportExperiment] = LabReportRunner.standard) {
        self.experiments = experiments
    }

    /// Runs every experiment (`progress` is told each one's name before it starts) and returns the report, with
    /// the machine as it was when the run started.
    public func run(
        _ options: LabReportOptions, progress: @Sendable (String) -> Void = { _ in }
    ) async throws -> LabReport {
        let machine = ReportMachine.current()
        var parameters = [
            ReportParameter("mode", options.quick ? "quick (small N, short budgets)" : "full"),
            ReportParameter("seed", "\(options.seed)"),
            ReportParameter("experiments", experiments.map(\.name).joined(separator: ", "))
        ]
        var sections: [ReportSection] = []
        for experiment in experiments {
            progress(experiment.name)
            parameters += experiment.parameters(options)
            sections.append(try await experiment.section(options))
        }
        return LabReport(title: "IsoKV lab report", machine: machine, parameters: parameters, sections: sections)
    }
}
