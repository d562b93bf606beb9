import Foundation
import IsoKVConformance
import IsoKVCore
import IsoKVLab
import Testing

/// The conformance runner plays each replay's roles as concurrent tasks on the engine: `Concurrent`, so that
/// ThreadSanitizer runs it.
@Suite("Lab anomalies (Concurrent)")
struct AnomalyMatrixConcurrentTests {
    @Test("the embedded engine's matrix has no mismatch and every difference from PostgreSQL is explained")
    func embeddedMatrix() async throws {
        let matrix = await AnomalyMatrix.run(on: EmbeddedLabBackend())
        for cell in matrix.mismatches {
            Issue.record("\(cell.replay) at \(cell.level): \(cell.outcome), expected \(cell.expected): \(cell.detail)")
        }
        #expect(matrix.cells.count == AnomalyMatrix.replays.reduce(0) { $0 + $1.levels.count })
        #expect(matrix.comparison.count == Phenomenon.allCases.count * IsolationLevel.allCases.count)
        for row in matrix.unexplainedDifferences {
            Issue.record("unexplained: \(row.phenomenon) at \(row.level): \(row.outcome) vs \(row.postgres)")
        }
        // The engine's read uncommitted really reads dirty: the one cell where it differs from PostgreSQL's table.
        let differing = matrix.comparison.filter(\.differs)
        #expect(differing.map(\.phenomenon) == [.dirtyRead])
        #expect(differing.map(\.level) == [.readUncommitted])
        #expect(differing.allSatisfy { $0.explanation != nil })
        #expect(
            matrix.cell(.writeSkew, at: .serializable)?.outcome == .preventedByAbort(code: "40001", transaction: "T2"))
        #expect(matrix.cell(.writeSkew, at: .snapshot)?.outcome == .occurs)

        let decoded = try JSONDecoder().decode(AnomalyMatrix.self, from: JSONEncoder().encode(matrix))
        #expect(decoded == matrix)
    }

    @Test("a cell that differs from PostgreSQL's table without an explanation is reported as unexplained")
    func unexplainedDifference() {
        // A store whose snapshot level lets a phantom through: PostgreSQL's repeatable read does not.
        let rows = [
            ConformanceReport.Row(
                replay: .phantom, level: .snapshot, expected: .verdict(.preventedBySnapshot), actual: .occurred,
                detail: "T1 saw emp/3"),
            ConformanceReport.Row(
                replay: .dirtyRead, level: .readCommitted, expected: .verdict(.preventedBySnapshot),
                actual: .preventedBySnapshot, detail: "")
        ]
        let matrix = AnomalyMatrix(
            report: ConformanceReport(backend: "broken", capabilities: .embeddedEngine, rows: rows))
        #expect(matrix.mismatches.map(\.replay) == [.phantom])
        #expect(matrix.unexplainedDifferences.map(\.phenomenon) == [.phantom])
        #expect(matrix.comparison.first { $0.phenomenon == .dirtyRead }?.differs == false)
    }

    @Test("PostgreSQL's documented table, as its manual states it")
    func postgresTable() {
        #expect(PostgresDocumentedCell.manual(.dirtyRead, .readUncommitted) == .allowedButNotInPostgres)
        #expect(PostgresDocumentedCell.manual(.nonRepeatableRead, .readCommitted) == .possible)
        #expect(PostgresDocumentedCell.manual(.phantom, .snapshot) == .allowedButNotInPostgres)
        #expect(PostgresDocumentedCell.manual(.serializationAnomaly, .snapshot) == .possible)
        for phenomenon in Phenomenon.allCases {
            #expect(PostgresDocumentedCell.manual(phenomenon, .serializable) == .notPossible)
        }
    }
}
