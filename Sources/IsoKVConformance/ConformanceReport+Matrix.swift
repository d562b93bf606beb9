import IsoKVCore

extension ConformanceReport {
    /// A Markdown table, replay × level: each cell the actual verdict, `✗ <actual> (expected <expected>)` where they
    /// differ, `—` where the replay did not run for lack of a capability, `n/a` where it does not apply; then one line per mismatch with its detail and steps.
    ///
    /// ```swift
    /// print(report.matrix())
    /// // | replay | read-uncommitted | read-committed | snapshot | serializable |
    /// // | dirty-read | occurred | prevented (snapshot) | prevented (snapshot) | prevented (snapshot) |
    /// ```
    public func matrix() -> String {
        let replays = rows.map(\.replay).uniqued()
        let levels = rows.map(\.level).uniqued()
        var text = Self.table(replays: replays, levels: levels) { replay, level in
            guard let row = row(replay, at: level) else { return "n/a" }
            switch row.status {
            case .matched: return row.actual!.description
            case .notRun: return "—"
            case .mismatched:
                return "✗ \(row.actual.map(\.description) ?? "not run") (expected \(row.expected))"
            }
        }
        let mismatches = self.mismatches
        text +=
            "\n\(backend): \(rows.count - mismatches.count - notRun.count) matched, \(mismatches.count) mismatched, "
            + "\(notRun.count) not run\n"
        for row in mismatches {
            text +=
                "\n✗ \(row.replay) at \(row.level.rawValue): expected \(row.expected), got "
                + "\(row.actual.map(\.description) ?? "not run")\n  \(row.detail)\n"
            for step in row.steps { text += "    · \(step)\n" }
        }
        return text
    }

    /// The expected table for a backend with `capabilities`, as a Markdown table (DESIGN.md shows two of them):
    /// `n/a` where the replay does not apply at the level, `— (needs …)` where the backend lacks a capability.
    ///
    /// ```swift
    /// print(ConformanceReport.expectedMatrix(for: capabilities))
    /// ```
    public static func expectedMatrix(
        for capabilities: BackendCapabilities, replays: [Replay] = Replay.allCases,
        levels: [IsolationLevel] = IsolationLevel.allCases
    ) -> String {
        table(replays: replays, levels: levels) { replay, level in
            guard replay.levels.contains(level) else { return "n/a" }
            switch replay.expectedOutcome(at: level, on: capabilities) {
            case .verdict(let verdict): return verdict.description
            case .notRun(let reason): return "— (\(reason))"
            }
        }
    }

    private static func table(
        replays: [Replay], levels: [IsolationLevel],
        cell: (Replay, IsolationLevel) -> String
    ) -> String {
        var text = "| replay | " + levels.map(\.rawValue).joined(separator: " | ") + " |\n"
        text += "|---|" + String(repeating: "---|", count: levels.count) + "\n"
        for replay in replays {
            text += "| \(replay) | " + levels.map { cell(replay, $0) }.joined(separator: " | ") + " |\n"
        }
        return text
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    fileprivate func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return filter { seen.insert($0).inserted }
    }
}
