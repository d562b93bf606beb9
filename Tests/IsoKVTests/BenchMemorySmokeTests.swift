import Foundation
import IsoKVTestSupport
import Testing

/// `isokv bench memory` end to end with a tiny load (this build's debug binary): the JSON rows of both modes are
/// consistent with each other and with the raw data, the soak really ran, and the allocator in effect is reported
/// (jemalloc or glibc with one arena; `ISOKV_MALLOC` and `MALLOC_ARENA_MAX` choose). A smoke test: never the
/// figures' size.
@Suite("isokv bench memory smoke", .serialized)
struct BenchMemorySmokeTests {
    struct Envelope: Decodable {
        var title: String
        var parameters: [String: String]
        var results: [Row]
    }

    struct Row: Decodable {
        var mode: String
        var keys: Int
        var valueSize: Int
        var rawBytes: Double
        var afterLoadBytes: Double
        var afterLoadRatio: Double
        var soakUpdates: Int
        var soakMaxBytes: Double
        var afterSoakBytes: Double
        var afterSoakRatio: Double
    }

    func run(_ environment: [String: String] = [:]) async throws -> Envelope {
        let r = try await ChildProcess.run(
            try IsokvExecutable.path(),
            ["bench", "memory", "--keys", "20000", "--value-size", "50", "--updates-factor", "1", "--format", "json"],
            environment: environment)
        try #require(r.status == 0, "\(r.stderr.suffix(2000))")
        return try JSONDecoder().decode(Envelope.self, from: Data(r.stdout.utf8))
    }

    @Test("both modes load, soak and report ratios of the raw data")
    func bothModesReportConsistentRows() async throws {
        let out = try await run()
        #expect(out.title == "isokv bench memory")
        #expect(out.results.map(\.mode) == ["in-memory", "durable"])
        for row in out.results {
            #expect(row.keys == 20000 && row.valueSize == 50 && row.soakUpdates == 20000, "\(row)")
            #expect(row.rawBytes == Double(20000 * (14 + 50)))
            #expect(
                row.afterLoadBytes > 0 && row.soakMaxBytes >= row.afterLoadBytes && row.afterSoakBytes > 0, "\(row)")
            #expect(abs(row.afterLoadRatio - row.afterLoadBytes / row.rawBytes) < 1e-9 * max(1, row.afterLoadRatio))
            #expect(abs(row.afterSoakRatio - row.afterSoakBytes / row.rawBytes) < 1e-9 * max(1, row.afterSoakRatio))
        }
        let allocator = out.parameters["allocator"] ?? ""
        #expect(allocator.hasPrefix("jemalloc ") || allocator.hasPrefix("glibc, "), "\(allocator)")
    }

    @Test("ISOKV_MALLOC=glibc with MALLOC_ARENA_MAX in the environment is what runs, and is reported")
    func environmentChoosesTheAllocator() async throws {
        let out = try await run(["ISOKV_MALLOC": "glibc", "MALLOC_ARENA_MAX": "4"])
        #expect(out.parameters["allocator"] == "glibc, MALLOC_ARENA_MAX=4 (ISOKV_MALLOC=glibc)")
    }
}
