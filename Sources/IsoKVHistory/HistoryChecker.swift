/// Checks a recorded history against an isolation level: builds the Direct Serialization Graph (Adya) and reports
/// every phenomenon the level forbids, cycles printed.
///
/// Entry points:
/// - ``check(_:at:)``: one level, the usual call in a test.
/// - ``analyze(_:)``: every phenomenon found, to query at several levels (``HistoryAnalysis/result(at:)``).
/// - ``checkAtRecordedLevels(_:)``: a mixed-level run, each finding judged at its transactions' own levels.
///
/// ```swift
/// let result = try HistoryChecker.check(recorder.history, at: .serializable)
/// #expect(result.isValid, "\(result)")          // prints each violation, e.g.
/// // G2-item: T3 -rw(k="y")-> T4 -rw(k="x")-> T3
/// ```
///
/// Cost: O(operations + edges) to build the graph and find components, plus at most one breadth-first search per
/// cyclic component and phase; the search for the narrowest (G-single) cycle is bounded by ``searchBudget``.
/// A 100 000-transaction history checks in seconds in a debug build.
public struct HistoryChecker: Sendable {
    /// Edge visits the G-single search may spend in total before it stops looking for a narrower cycle and
    /// classifies each remaining component by the one cycle it finds (``HistoryStats/searchBudgetExhausted``).
    public var searchBudget: Int

    /// A checker; the default budget is about a second of searching in a release build.
    public init(searchBudget: Int = 50_000_000) { self.searchBudget = searchBudget }

    /// Every phenomenon in `history`, whatever level it ran at.
    /// - Throws: ``HistoryError`` if the history is malformed (duplicate ids, missing outcome, writes of a key that
    ///   cannot be ordered).
    public func analyze(_ history: History) throws(HistoryError) -> HistoryAnalysis {
        let graph = try DependencyGraph(history)
        var stats = graph.stats
        let cycles = graph.findCycles(budget: searchBudget, stats: &stats)
        return HistoryAnalysis(anomalies: graph.findings + cycles, stats: stats)
    }

    /// The phenomena of `history` that `level` forbids.
    public static func check(_ history: History, at level: HistoryIsolation) throws(HistoryError) -> CheckResult {
        try HistoryChecker().analyze(history).result(at: level)
    }

    /// Checks a mixed-level history, each finding against the levels its transactions ran at: a finding is a
    /// violation when the *weakest* level among the committed transactions that own it forbids it (every
    /// participant of a cycle; the reader of a G1a/G1b; all readers of a lost update). So a write skew between two
    /// serializable transactions is a violation, one between a serializable and a snapshot transaction is allowed —
    /// PostgreSQL's promise for SSI mixed with weaker levels. The result's `level` is the strongest level present.
    ///
    /// This is a conservative reading of Adya's mixed-level theory (it never blames a transaction for a cycle that a
    /// weaker participant allowed), not its full construction.
    public static func checkAtRecordedLevels(_ history: History) throws(HistoryError) -> CheckResult {
        let analysis = try HistoryChecker().analyze(history)
        var levelOf: [TxnID: HistoryIsolation] = [:]
        for t in history.transactions { levelOf[t.id] = t.level }
        let strongest =
            history.transactions.filter { $0.outcome?.isCommitted == true }.map(\.level).max()
            ?? .serializable
        func forbidden(_ a: Anomaly) -> Bool {
            let owners: ArraySlice<TxnID> =
                switch a.phenomenon {
                case .g1a, .g1b: a.transactions.prefix(1)
                default: a.transactions[...]
                }
            let level = owners.compactMap { levelOf[$0] }.min() ?? strongest
            return a.phenomenon.isForbidden(at: level)
        }
        return CheckResult(
            level: strongest, violations: analysis.anomalies.filter(forbidden),
            allowed: analysis.anomalies.filter { !forbidden($0) }, stats: analysis.stats)
    }
}

/// Everything the checker found in one history, independent of level.
public struct HistoryAnalysis: Hashable, Sendable, Codable {
    /// Every finding: single-read ones (G1a, G1b, lost update, garbage reads) then cycles (G0, G1c, G-single,
    /// G2-item, G2), each cycle under its narrowest class.
    public var anomalies: [Anomaly]
    /// Size of the history and of its graph.
    public var stats: HistoryStats

    /// The distinct phenomena found.
    public var phenomena: Set<Phenomenon> { Set(anomalies.map(\.phenomenon)) }

    /// The findings split into what `level` forbids and what it allows.
    public func result(at level: HistoryIsolation) -> CheckResult {
        CheckResult(
            level: level,
            violations: anomalies.filter { $0.phenomenon.isForbidden(at: level) },
            allowed: anomalies.filter { !$0.phenomenon.isForbidden(at: level) },
            stats: stats)
    }
}

/// The verdict of a history at one level.
public struct CheckResult: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The level the history was judged against.
    public var level: HistoryIsolation
    /// Findings the level forbids: the store broke its promise.
    public var violations: [Anomaly]
    /// Findings the level allows (write skew at snapshot, lost update at read committed, …).
    public var allowed: [Anomaly]
    /// Size of the history and of its graph.
    public var stats: HistoryStats

    /// No forbidden phenomenon.
    public var isValid: Bool { violations.isEmpty }

    /// The distinct forbidden phenomena found.
    public var phenomena: Set<Phenomenon> { Set(violations.map(\.phenomenon)) }

    /// Counts by phenomenon and the first `maxCycles` violations printed, for a report.
    public func summary(maxCycles: Int = 10) -> HistorySummary {
        var found: [String: Int] = [:]
        for a in violations + allowed { found[a.phenomenon.rawValue, default: 0] += 1 }
        var forbidden: [String: Int] = [:]
        for a in violations { forbidden[a.phenomenon.rawValue, default: 0] += 1 }
        let rows = Phenomenon.allCases.map {
            PhenomenonCount(
                phenomenon: $0.rawValue, found: found[$0.rawValue, default: 0],
                forbidden: $0.isForbidden(at: level))
        }
        return HistorySummary(
            level: level, valid: isValid, stats: stats, found: found, violations: forbidden,
            firstViolations: violations.prefix(max(0, maxCycles)).map(\.description), rows: rows)
    }

    /// `"serializable: 2 violation(s)"` then one line per violation.
    public var description: String {
        var out =
            "\(level): \(violations.count) violation(s) in \(stats.committed) committed / "
            + "\(stats.aborted) aborted transactions"
        if !allowed.isEmpty { out += " (\(allowed.count) allowed finding(s))" }
        for v in violations.prefix(20) { out += "\n  \(v)" }
        if violations.count > 20 { out += "\n  … \(violations.count - 20) more" }
        return out
    }
}
