import IsoKVCore

/// The result of ``ConformanceRunner/runAll(_:levels:)``: one row per replay and level, with the expected and the
/// actual verdict. `Codable`, for a lab to keep as JSON; ``matrix()`` prints it as a table.
///
/// ```swift
/// let report = await ConformanceRunner(backend: backend).runAll()
/// print(report.matrix())                                    // replay × level, mismatches marked
/// let json = try JSONEncoder().encode(report)
/// for row in report.mismatches { print(row.replay, row.level, row.detail) }
/// ```
public struct ConformanceReport: Hashable, Sendable, Codable {
    /// One replay at one level.
    public struct Row: Hashable, Sendable, Codable {
        public enum Status: String, Hashable, Sendable, Codable {
            /// The actual verdict is the expected one.
            case matched
            /// It is not (or the replay misbehaved).
            case mismatched
            /// The replay needs a capability the backend lacks.
            case notRun = "not-run"
        }

        public var replay: Replay
        public var level: IsolationLevel
        public var expected: ExpectedOutcome
        /// What the run found; nil when the replay was not run.
        public var actual: Verdict?
        /// The run's detail line, or why it was not run.
        public var detail: String
        /// The replay's steps, kept for mismatched rows only (empty otherwise).
        public var steps: [String]
        /// Wall-clock time of the run, store creation included.
        public var seconds: Double
        public var status: Status

        public init(
            replay: Replay, level: IsolationLevel, expected: ExpectedOutcome, actual: Verdict?,
            detail: String, steps: [String] = [], seconds: Double = 0
        ) {
            self.replay = replay
            self.level = level
            self.expected = expected
            self.actual = actual
            self.detail = detail
            self.steps = steps
            self.seconds = seconds
            switch (expected, actual) {
            case (.notRun, nil): status = .notRun
            case (.verdict(let e), let a?) where e == a: status = .matched
            default: status = .mismatched
            }
        }

        /// Whether nothing is wrong with this cell (matched, or rightly not run).
        public var match: Bool { status != .mismatched }
    }

    /// The backend's ``ConformanceBackend/name``.
    public var backend: String
    public var capabilities: BackendCapabilities
    /// In replay order, then level order.
    public var rows: [Row]

    public init(backend: String, capabilities: BackendCapabilities, rows: [Row]) {
        self.backend = backend
        self.capabilities = capabilities
        self.rows = rows
    }

    /// The rows whose actual verdict differs from the expected one.
    public var mismatches: [Row] { rows.filter { $0.status == .mismatched } }

    /// The rows not run for lack of a capability.
    public var notRun: [Row] { rows.filter { $0.status == .notRun } }

    /// True when every row that ran matched.
    public var conforms: Bool { mismatches.isEmpty }

    /// The row of `replay` at `level`, if it was part of the run.
    public func row(_ replay: Replay, at level: IsolationLevel) -> Row? {
        rows.first { $0.replay == replay && $0.level == level }
    }
}
