import IsoKVCore

extension AnomalyMatrix {
    /// Several backends' matrices as one section: each backend's coloured matrix and comparison table, the checks
    /// of all, and `notes` (e.g. a backend the replays could not run on) at the end.
    ///
    /// ```swift
    /// let section = try AnomalyMatrix.reportSection([await AnomalyMatrix.run(on: EmbeddedLabBackend())])
    /// ```
    public static func reportSection(_ matrices: [AnomalyMatrix], notes: [String] = [], id: String = "anomalies")
        throws -> ReportSection
    {
        if matrices.count == 1, var section = try matrices.first?.reportSection(id: id) {
            section.blocks += notes.map { .note($0) }
            return section
        }
        var section = ReportSection(
            id: id, title: "Anomalies × isolation level (\(matrices.map(\.backend).joined(separator: ", ")))",
            summary: """
                Every anomaly replay of the conformance library at every isolation level on each backend, each on a \
                fresh store, its steps ordered by observed lock waits where the backend shows them: a cell says \
                whether the anomaly occurred or what prevented it. Under each matrix, PostgreSQL's documented table \
                beside what that backend did, with every difference explained.
                """)
        for matrix in matrices {
            section.checks += matrix.checks()
            section.blocks.append(.table(matrix.matrixTable()))
            section.blocks.append(.table(matrix.comparisonTable()))
        }
        section.blocks += notes.map { .note($0) }
        section.data = try ReportJSON(encoding: matrices)
        return section
    }

    /// The `anomalies` experiment as a report section: the matrix as a coloured table (occurs red, prevented by
    /// waiting amber, prevented by abort blue with the code, prevented by the snapshot green), PostgreSQL's documented
    /// table beside it, and two checks (every cell as the conformance library expects; every difference from
    /// PostgreSQL explained).
    ///
    /// ```swift
    /// let section = try await AnomalyMatrix.run(on: EmbeddedLabBackend()).reportSection()
    /// ```
    public func reportSection(id: String = "anomalies") throws -> ReportSection {
        var section = ReportSection(
            id: id, title: "Anomalies × isolation level (\(backend))",
            summary: """
                Every anomaly replay of the conformance library at every isolation level, each on a fresh store, its \
                steps ordered by observed lock waits (no sleeps): a cell says whether the anomaly occurred or what \
                prevented it. Below, the four phenomena of PostgreSQL's documented isolation table beside what \
                \(backend) did, with every difference explained.
                """)
        section.checks = checks()
        section.blocks.append(.table(matrixTable()))
        section.blocks.append(.table(comparisonTable()))
        section.blocks.append(
            .note(
                "Serialization anomaly is provoked by the write-skew replay; \"same\" compares whether the phenomenon "
                    + "shows. The PostgreSQL column is its manual's table (documentation, not measured here)."))
        section.data = try ReportJSON(encoding: self)
        return section
    }

    func checks() -> [ReportCheck] {
        let mismatches = self.mismatches
        var checks = [
            ReportCheck(
                mismatches.isEmpty ? .pass : .fail, "anomaly matrix (\(backend)) as the conformance library expects",
                "\(cells.count - mismatches.count) of \(cells.count) cells as expected"
                    + mismatches.map { "; \($0.replay.rawValue) at \($0.level.rawValue): \($0.outcome)" }.joined())
        ]
        let differing = comparison.filter(\.differs)
        let unexplained = unexplainedDifferences
        checks.append(
            ReportCheck(
                unexplained.isEmpty ? .pass : .fail,
                "every difference from PostgreSQL's documented table explained (\(backend))",
                "\(differing.count) of \(comparison.count) cells differ, \(differing.count - unexplained.count) explained"
                    + unexplained.map { "; UNEXPLAINED: \($0.phenomenon.title) at \($0.level.rawValue)" }.joined()))
        return checks
    }

    func matrixTable() -> ReportTable {
        let rows = Self.replays.map { replay -> [ReportCell] in
            [ReportCell(replay.rawValue)]
                + levels.map { level in
                    guard let cell = cell(replay, at: level) else { return ReportCell("n/a", .muted) }
                    if !cell.matchesExpected {
                        return ReportCell("✗ \(cell.outcome) (expected \(cell.expected))", .fail)
                    }
                    return ReportCell(cell.outcome.description, Self.tone(cell.outcome))
                }
        }
        return ReportTable(
            caption: "Anomaly × isolation level (\(backend))", columns: ["anomaly"] + levels.map(\.rawValue),
            rows: rows,
            legend: [
                ReportCell("occurs", .occurs), ReportCell("prevented by waiting", .wait),
                ReportCell("prevented by abort (code)", .abort), ReportCell("prevented by the snapshot", .snapshot),
                ReportCell("not applicable / not run", .muted), ReportCell("not what the library expects", .fail)
            ])
    }

    func comparisonTable() -> ReportTable {
        let rows = comparison.map { row -> [ReportCell] in
            [
                ReportCell(row.phenomenon.title),
                ReportCell(row.level == .snapshot ? "snapshot (repeatable read)" : row.level.rawValue),
                ReportCell(row.postgres.text, .published),
                ReportCell(row.outcome.description, Self.tone(row.outcome)),
                row.differs
                    ? ReportCell("differs", row.explanation == nil ? .fail : .wait) : ReportCell("same", .ok),
                ReportCell(row.differs ? (row.explanation ?? "UNEXPLAINED") : "")
            ]
        }
        return ReportTable(
            caption: "PostgreSQL's documented table (its manual, Transaction Isolation) beside \(backend)",
            columns: ["phenomenon", "level", "PostgreSQL (manual)", backend, "same?", "why it differs"], rows: rows)
    }

    static func tone(_ outcome: AnomalyOutcome) -> ReportCell.Tone {
        switch outcome {
        case .occurs: return .occurs
        case .preventedBySnapshot: return .snapshot
        case .preventedByWaiting: return .wait
        case .preventedByAbort: return .abort
        case .notRun: return .muted
        case .other: return .fail
        }
    }
}
