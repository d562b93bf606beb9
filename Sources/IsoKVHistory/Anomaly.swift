/// The kind of a Direct Serialization Graph edge Ti → Tj (Adya, section 3.4).
public enum DependencyKind: String, Hashable, Sendable, Codable, CaseIterable {
    /// Write dependency: Tj installed the version of a key that follows Ti's.
    case ww
    /// Read dependency: Tj read the version of a key that Ti installed.
    case wr
    /// Item anti-dependency: Ti read a version of a key and Tj installed the next one.
    case rw
    /// Predicate anti-dependency: Ti's scan did not see a key of its range that Tj later made present (a phantom).
    case rwPredicate = "rw-predicate"

    /// This kind's bit in an edge mask.
    var bit: UInt8 {
        switch self {
        case .ww: 1
        case .wr: 2
        case .rw: 4
        case .rwPredicate: 8
        }
    }
    var isAntiDependency: Bool { self == .rw || self == .rwPredicate }
}

/// One edge of a reported cycle.
public struct CycleStep: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The transaction the dependency starts from (Ti in Ti → Tj).
    public var from: TxnID
    /// The transaction that depends on it (Tj).
    public var to: TxnID
    /// What kind of dependency it is.
    public var kind: DependencyKind
    /// The key the dependency is about.
    public var key: HistoryKey
    /// For predicate anti-dependencies, the scanned range.
    public var range: KeyRange?

    /// `-rw(k="x")->`, `-rw(range=["a", "c") k="b")->`.
    public var arrow: String {
        switch kind {
        case .rwPredicate: "-rw(range=\(range.map(\.description) ?? "?") k=\(key))->"
        default: "-\(kind.rawValue)(k=\(key))->"
        }
    }

    public var description: String { "T\(from) \(arrow) T\(to)" }
}

/// One finding: a cycle or a single bad read.
public struct Anomaly: Hashable, Sendable, Codable, CustomStringConvertible {
    /// What was found.
    public var phenomenon: Phenomenon
    /// The transactions involved, the cycle's in cycle order.
    public var transactions: [TxnID]
    /// The cycle, first step starting at `transactions[0]` and the last step ending there; empty for non-cycles.
    public var cycle: [CycleStep]
    /// Readable account: the cycle for cycle phenomena (`T3 -rw(k="x")-> T7 -ww(k="y")-> T3`), a sentence otherwise.
    public var explanation: String

    /// A finding; cycle findings are built by the checker from their steps.
    public init(phenomenon: Phenomenon, transactions: [TxnID], cycle: [CycleStep] = [], explanation: String) {
        self.phenomenon = phenomenon
        self.transactions = transactions
        self.cycle = cycle
        self.explanation = explanation
    }

    /// Builds a cycle finding; the explanation is the cycle printed.
    init(phenomenon: Phenomenon, cycle: [CycleStep]) {
        self.phenomenon = phenomenon
        self.transactions = cycle.map(\.from)
        self.cycle = cycle
        var text = cycle.first.map { "T\($0.from)" } ?? ""
        for step in cycle { text += " \(step.arrow) T\(step.to)" }
        self.explanation = text
    }

    public var description: String { "\(phenomenon): \(explanation)" }
}

/// Size figures of an analysed history.
public struct HistoryStats: Hashable, Sendable, Codable {
    /// Recorded transactions (committed + aborted).
    public var transactions = 0
    /// Committed transactions: the nodes of the dependency graph.
    public var committed = 0
    /// Aborted transactions (not in the graph; only their writes matter, for G1a).
    public var aborted = 0
    /// Edges of the dependency graph by kind (`"ww"`, `"wr"`, `"rw"`, `"rw-predicate"`), duplicates merged.
    public var edges: [String: Int] = [:]
    /// Reads that found a key absent without saying which absent version (`Observed.absent`, or a scan that did not
    /// list the key) when the key was deleted during the history: the version is ambiguous, so no edge was derived
    /// (see DESIGN.md, "absent reads").
    public var ambiguousAbsentReads = 0
    /// Non-trivial strongly connected components of the full graph.
    public var cyclicComponents = 0
    /// True when the cycle search hit its work budget: some components were classified from one cycle without an
    /// exhaustive search for a narrower one.
    public var searchBudgetExhausted = false
}

/// One row of a summary table: a phenomenon, how often it was found, whether the level forbids it.
public struct PhenomenonCount: Hashable, Sendable, Codable {
    /// `"G0"`, `"G1a"`, … `"lost-update"`.
    public var phenomenon: String
    /// Findings of this phenomenon.
    public var found: Int
    /// Whether the checked level forbids it (then `found > 0` is a violation).
    public var forbidden: Bool

    /// A row, as `HistorySummary.rows` builds it.
    public init(phenomenon: String, found: Int, forbidden: Bool) {
        self.phenomenon = phenomenon
        self.found = found
        self.forbidden = forbidden
    }
}

/// A compact, `Codable` digest of a check for reports (`isokv lab … --format json`).
///
/// ```swift
/// let s = try HistoryChecker.check(history, at: .snapshot).summary(maxCycles: 5)
/// for row in s.rows { print(row.phenomenon, row.found, row.forbidden ? "forbidden" : "allowed") }
/// ```
public struct HistorySummary: Hashable, Sendable, Codable {
    /// The level checked.
    public var level: HistoryIsolation
    /// No forbidden phenomenon found.
    public var valid: Bool
    /// Size of the history and of its graph.
    public var stats: HistoryStats
    /// Every phenomenon found (allowed or not) → number of findings.
    public var found: [String: Int]
    /// Findings forbidden at `level` → number.
    public var violations: [String: Int]
    /// The first forbidden findings, printed (cycles as `T3 -rw(k="x")-> T7 -ww(k="y")-> T3`).
    public var firstViolations: [String]
    /// One row per phenomenon the checker knows, in `Phenomenon` order, zero counts included (a stable table).
    public var rows: [PhenomenonCount]
}
