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

/// The `anomalies` experiment on the embedded engine.
public struct AnomaliesReportExperiment: LabReportExperiment {
    public let name = "anomalies"

    public init() {}

    public func parameters(_ options: LabReportOptions) -> [ReportParameter] {
        [ReportParameter("anomalies: backend", "embedded (in-memory)")]
    }

    public func section(_ options: LabReportOptions) async throws -> ReportSection {
        try await AnomalyMatrix.run(on: EmbeddedLabBackend()).reportSection()
    }
}

/// The `lost-update` experiment on the embedded engine, every strategy.
public struct LostUpdateReportExperiment: LabReportExperiment {
    public let name = "lost-update"

    public init() {}

    public func parameters(_ options: LabReportOptions) -> [ReportParameter] {
        let p = options.lostUpdate
        return [
            ReportParameter("lost-update: backend", "embedded (in-memory)"),
            ReportParameter("lost-update: n (concurrent operations)", "\(p.operations)"),
            ReportParameter("lost-update: budget per operation", "\(p.budgetMilliseconds) ms"),
            ReportParameter("lost-update: serializable max attempts", "\(p.serializableMaxAttempts)"),
            ReportParameter("lost-update: partitions / max batch", "\(p.partitions) / \(p.maxBatch)"),
            ReportParameter("lost-update: simulated round trip per statement", "\(p.statementLatencyMicroseconds) µs")
        ]
    }

    public func section(_ options: LabReportOptions) async throws -> ReportSection {
        let results = try await LostUpdateExperiment(options.lostUpdate).run()
        return try LostUpdateReport.section(
            [LostUpdateReport.Run(backend: "embedded", parameters: options.lostUpdate, results: results)])
    }
}

/// Runs experiments one after another and assembles the report.
///
/// ```swift
/// let report = try await LabReportRunner().run(LabReportOptions(quick: true)) { print("running", $0) }
/// print(report.failures.isEmpty ? "all guarantees held" : "FAIL")
/// ```
public struct LabReportRunner: Sendable {
    /// Every experiment the report knows, in the order the page shows them.
    public static let standard: [any LabReportExperiment] = [LostUpdateReportExperiment(), AnomaliesReportExperiment()]

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
