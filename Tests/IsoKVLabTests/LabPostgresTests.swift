import Foundation
import IsoKVConformance
import IsoKVLab
import IsoKVLabBackends
import IsoKVTestSupport
import Testing

/// Where the cluster is: `ISOKV_POSTGRES_URL`, set by `scripts/pg-test-cluster run -- swift test --filter Postgres`.
enum LabPostgres {
    static let url: String? = {
        let v = ProcessInfo.processInfo.environment["ISOKV_POSTGRES_URL"]
        return v?.isEmpty == false ? v : nil
    }()
    static let skipReason: Comment =
        "ISOKV_POSTGRES_URL is not set: run `scripts/pg-test-cluster run -- swift test --filter Postgres`"
    static func backend() throws -> PostgresLabBackend { try PostgresLabBackend(url: url!) }
}

@Suite("Lab quick Postgres", .enabled(if: LabPostgres.url != nil, LabPostgres.skipReason))
struct LabQuickPostgresTests {
    @Test func lostUpdate() async throws {
        try await LabQuickChecks.lostUpdate(on: try LabPostgres.backend(), seed: testSeed("lab lost-update pg"))
    }
    @Test func isolation() async throws {
        try await LabQuickChecks.isolation(on: try LabPostgres.backend(), seed: testSeed("lab isolation pg"))
    }
    @Test func queue() async throws {
        try await LabQuickChecks.queue(on: try LabPostgres.backend(), seed: testSeed("lab queue pg"))
    }
    @Test func writeSkew() async throws {
        try await LabQuickChecks.writeSkew(on: try LabPostgres.backend(), seed: testSeed("lab write-skew pg"))
    }
    @Test func contention() async throws {
        try await LabQuickChecks.contention(on: try LabPostgres.backend(), seed: testSeed("lab contention pg"))
    }
    @Test("the anomaly matrix on PostgreSQL: as its expected table, and beside its manual with no difference")
    func anomalies() async throws {
        let matrix = await AnomalyMatrix.run(on: try LabPostgres.backend())
        #expect(matrix.backend == "postgresql")
        #expect(matrix.mismatches.isEmpty, "\(matrix.mismatches)")
        #expect(matrix.comparison.filter(\.differs).isEmpty, "\(matrix.comparison.filter(\.differs))")
    }
}
