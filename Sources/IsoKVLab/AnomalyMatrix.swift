import IsoKVConformance
import IsoKVCore

/// The `anomalies` experiment: every anomaly replay of the conformance library at every isolation level on one
/// backend, each cell classified (occurs / prevented by snapshot / by waiting / by abort with the code), then the
/// four phenomena of PostgreSQL's documented isolation table compared with what the backend did, each differing cell
/// explained in one line.
///
/// ```swift
/// let matrix = await AnomalyMatrix.run(on: EmbeddedLabBackend())
/// for row in matrix.comparison where row.differs { print(row.phenomenon, row.level, row.explanation ?? "?") }
/// ```
public struct AnomalyMatrix: Hashable, Sendable, Codable {
    /// One replay at one level, as the backend ran it.
    public struct Cell: Hashable, Sendable, Codable {
        public var replay: Replay
        public var level: IsolationLevel
        /// What happened: occurs, or what prevented it.
        public var outcome: AnomalyOutcome
        /// What the conformance library expects of a backend with these capabilities.
        public var expected: ExpectedOutcome
        /// The actual verdict is the expected one (or the replay rightly did not run).
        public var matchesExpected: Bool
        /// The run's one-line detail (values read, who waited, who failed where).
        public var detail: String
    }

    /// One phenomenon of PostgreSQL's table at one level: the manual's cell beside the backend's.
    public struct Comparison: Hashable, Sendable, Codable {
        public var phenomenon: Phenomenon
        public var level: IsolationLevel
        /// The manual's cell.
        public var postgres: PostgresDocumentedCell
        /// The replay that provokes the phenomenon here.
        public var replay: Replay
        /// What the backend did.
        public var outcome: AnomalyOutcome
        /// Whether the phenomenon showing here disagrees with whether it shows in PostgreSQL.
        public var differs: Bool
        /// One line saying why, for every differing cell; nil when the cell agrees, or when nobody has explained
        /// the difference (a finding in itself: ``unexplainedDifferences``).
        public var explanation: String?
    }

    /// The backend's name.
    public var backend: String
    public var levels: [IsolationLevel]
    /// In replay order, then level order.
    public var cells: [Cell]
    /// In phenomenon order, then level order.
    public var comparison: [Comparison]

    /// Cells whose verdict differs from the conformance library's expected table.
    public var mismatches: [Cell] { cells.filter { !$0.matchesExpected } }
    /// Differing cells with no explanation.
    public var unexplainedDifferences: [Comparison] { comparison.filter { $0.differs && $0.explanation == nil } }

    public func cell(_ replay: Replay, at level: IsolationLevel) -> Cell? {
        cells.first { $0.replay == replay && $0.level == level }
    }

    /// The anomaly replays (category `.anomaly`), in the library's order.
    public static var replays: [Replay] { Replay.allCases.filter { $0.category == .anomaly } }

    /// Runs every anomaly replay at every level on `backend` (each on a fresh store, one after another).
    public static func run<Backend: ConformanceBackend>(on backend: Backend) async -> AnomalyMatrix {
        let report = await ConformanceRunner(backend: backend).runAll(replays, levels: IsolationLevel.allCases)
        return AnomalyMatrix(report: report)
    }

    /// The matrix of a conformance report (its anomaly rows).
    public init(report: ConformanceReport) {
        backend = report.backend
        levels = IsolationLevel.allCases
        cells = report.rows.filter { $0.replay.category == .anomaly }.map { row in
            Cell(
                replay: row.replay, level: row.level, outcome: AnomalyOutcome(row.actual), expected: row.expected,
                matchesExpected: row.match, detail: row.detail)
        }
        var comparison: [Comparison] = []
        for phenomenon in Phenomenon.allCases {
            for level in levels {
                guard let cell = cells.first(where: { $0.replay == phenomenon.replay && $0.level == level }) else {
                    continue
                }
                let postgres = PostgresDocumentedCell.manual(phenomenon, level)
                let differs = cell.outcome.occurs != postgres.occursInPostgres
                comparison.append(
                    Comparison(
                        phenomenon: phenomenon, level: level, postgres: postgres, replay: cell.replay,
                        outcome: cell.outcome, differs: differs,
                        explanation: differs
                            ? Self.explanation(phenomenon, level, occursHere: cell.outcome.occurs) : nil))
            }
        }
        self.comparison = comparison
    }

    /// Why the backend's cell differs from PostgreSQL's, for the differences understood; nil otherwise.
    static func explanation(_ phenomenon: Phenomenon, _ level: IsolationLevel, occursHere: Bool) -> String? {
        switch (phenomenon, level, occursHere) {
        case (.dirtyRead, .readUncommitted, true):
            return
                "read uncommitted: true dirty reads here (the reader sees the open writer's value); PostgreSQL runs "
                + "read uncommitted as read committed"
        default:
            return nil
        }
    }
}

/// What happened in one anomaly replay, in the lab's words.
public enum AnomalyOutcome: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Every transaction committed and the anomaly showed.
    case occurs
    /// The reader's snapshot hid the concurrent change; nobody waited or failed.
    case preventedBySnapshot
    /// `transaction` waited for a row lock (or a safe snapshot) and then went on.
    case preventedByWaiting(transaction: String)
    /// `transaction` failed with `code` (40001, 40P01, 55P03), so the anomaly could not commit.
    case preventedByAbort(code: String, transaction: String)
    /// The replay did not run (a capability the backend lacks).
    case notRun
    /// Anything else (a misbehaving store); the text says what.
    case other(String)

    init(_ verdict: Verdict?) {
        switch verdict {
        case nil: self = .notRun
        case .occurred?: self = .occurs
        case .preventedBySnapshot?: self = .preventedBySnapshot
        case .preventedByWaiting(let role)?: self = .preventedByWaiting(transaction: role.description)
        case .preventedByError(let code, let role, _)?:
            self = .preventedByAbort(code: code.rawValue, transaction: role.description)
        case let verdict?: self = .other(verdict.description)
        }
    }

    /// Whether the anomaly showed.
    public var occurs: Bool { self == .occurs }

    public var description: String {
        switch self {
        case .occurs: return "occurs"
        case .preventedBySnapshot: return "prevented: snapshot"
        case .preventedByWaiting(let t): return "prevented: \(t) waits"
        case .preventedByAbort(let code, let t): return "prevented: \(t) aborts \(code)"
        case .notRun: return "not run"
        case .other(let text): return text
        }
    }
}

/// The four phenomena of PostgreSQL's isolation table, each with the conformance replay that provokes it here.
public enum Phenomenon: String, Hashable, Sendable, Codable, CaseIterable {
    case dirtyRead = "dirty-read"
    case nonRepeatableRead = "non-repeatable-read"
    case phantom
    /// Provoked by write skew (two doctors on call): the simplest result no serial order can give.
    case serializationAnomaly = "serialization-anomaly"

    public var title: String {
        switch self {
        case .dirtyRead: return "Dirty read"
        case .nonRepeatableRead: return "Nonrepeatable read"
        case .phantom: return "Phantom read"
        case .serializationAnomaly: return "Serialization anomaly"
        }
    }

    public var replay: Replay {
        switch self {
        case .dirtyRead: return .dirtyRead
        case .nonRepeatableRead: return .nonRepeatableRead
        case .phantom: return .phantom
        case .serializationAnomaly: return .writeSkew
        }
    }
}

/// A cell of the table "Transaction Isolation Levels" in PostgreSQL's manual (chapter Concurrency Control,
/// Transaction Isolation). Documentation, not a measurement: the lab prints it as the manual states it.
public enum PostgresDocumentedCell: String, Hashable, Sendable, Codable {
    case possible = "possible"
    case notPossible = "not-possible"
    /// "Allowed, but not in PG": the standard allows it at this level, PostgreSQL does not let it happen.
    case allowedButNotInPostgres = "allowed-but-not-in-pg"

    /// The manual's wording.
    public var text: String {
        switch self {
        case .possible: return "Possible"
        case .notPossible: return "Not possible"
        case .allowedButNotInPostgres: return "Allowed, but not in PG"
        }
    }

    /// Whether PostgreSQL lets the phenomenon happen at this level.
    public var occursInPostgres: Bool { self == .possible }

    /// The manual's cell for `phenomenon` at `level` (`.snapshot` is PostgreSQL's repeatable read).
    public static func manual(_ phenomenon: Phenomenon, _ level: IsolationLevel) -> PostgresDocumentedCell {
        switch (level, phenomenon) {
        case (.readUncommitted, .dirtyRead): return .allowedButNotInPostgres
        case (.readUncommitted, _): return .possible
        case (.readCommitted, .dirtyRead): return .notPossible
        case (.readCommitted, _): return .possible
        case (.snapshot, .dirtyRead), (.snapshot, .nonRepeatableRead): return .notPossible
        case (.snapshot, .phantom): return .allowedButNotInPostgres
        case (.snapshot, .serializationAnomaly): return .possible
        case (.serializable, _): return .notPossible
        }
    }
}
