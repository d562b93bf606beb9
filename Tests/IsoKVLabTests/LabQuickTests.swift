import Foundation
import IsoKVBaseline
import IsoKVCore
@testable import IsoKVLab
import IsoKVLabBackends
import IsoKVTestSupport
import IsoKVWorkloads
import Testing

@Suite("Lab quick embedded Concurrent")
struct LabQuickEmbeddedTests {
    @Test func lostUpdate() async throws {
        try await LabQuickChecks.lostUpdate(on: EmbeddedLabBackend(), seed: testSeed("lab lost-update embedded"))
    }
    @Test func isolation() async throws {
        try await LabQuickChecks.isolation(on: EmbeddedLabBackend(), seed: testSeed("lab isolation embedded"))
    }
    @Test func queue() async throws {
        try await LabQuickChecks.queue(on: EmbeddedLabBackend(), seed: testSeed("lab queue embedded"))
    }
    @Test func writeSkew() async throws {
        try await LabQuickChecks.writeSkew(on: EmbeddedLabBackend(), seed: testSeed("lab write-skew embedded"))
    }
    @Test func contention() async throws {
        try await LabQuickChecks.contention(on: EmbeddedLabBackend(), seed: testSeed("lab contention embedded"))
    }
    @Test("the chooser: uniform, Zipfian below 1, the exact law at 1.2 (rank 0 the most frequent)")
    func chooser() {
        var rng = SplitMix64(seed: 9)
        for theta in [0.0, 0.5, 0.99, 1.2] {
            let chooser = CounterChooser(count: 16, theta: theta)
            var counts = Array(repeating: 0, count: 16)
            for _ in 0..<20_000 { counts[chooser.next(using: &rng)] += 1 }
            #expect(counts.allSatisfy { $0 > 0 } || theta > 1)
            if theta == 0 {
                #expect(counts.max()! < 2 * counts.min()!, "\(counts)")
            } else {
                #expect(counts[0] == counts.max()!, "θ=\(theta): \(counts)")
            }
            if theta == 1.2 {
                // p(0) = 1 / Σ_{r=1…16} r^-1.2 ≈ 0.365.
                let p0 = 1 / (1...16).map { 1 / pow(Double($0), 1.2) }.reduce(0, +)
                #expect(abs(Double(counts[0]) / 20_000 - p0) < 0.02, "\(counts), p0 \(p0)")
            }
        }
    }
}

@Suite("Lab quick HTTP Concurrent (in-process server)")
struct LabQuickHTTPTests {
    @Test func lostUpdate() async throws {
        try await LabQuickChecks.lostUpdate(
            on: HTTPLabBackend(mode: .inProcess), seed: testSeed("lab lost-update http"))
    }
    @Test func isolation() async throws {
        try await LabQuickChecks.isolation(on: HTTPLabBackend(mode: .inProcess), seed: testSeed("lab isolation http"))
    }
    @Test func queue() async throws {
        try await LabQuickChecks.queue(on: HTTPLabBackend(mode: .inProcess), seed: testSeed("lab queue http"))
    }
    @Test func writeSkew() async throws {
        try await LabQuickChecks.writeSkew(on: HTTPLabBackend(mode: .inProcess), seed: testSeed("lab write-skew http"))
    }
    @Test func contention() async throws {
        try await LabQuickChecks.contention(on: HTTPLabBackend(mode: .inProcess), seed: testSeed("lab contention http"))
    }
    @Test("the anomaly matrix through the server: as expected for its capabilities, one explained difference")
    func anomalies() async throws {
        let matrix = await AnomalyMatrix.run(on: HTTPLabBackend(mode: .inProcess))
        #expect(matrix.backend == "http")
        #expect(matrix.mismatches.isEmpty, "\(matrix.mismatches)")
        #expect(matrix.unexplainedDifferences.isEmpty)
        #expect(matrix.comparison.filter(\.differs).map(\.phenomenon) == [.dirtyRead])
    }
}

@Suite("Lab backends")
struct LabBackendSpecTests {
    @Test func parsing() throws {
        #expect(try LabBackendSpec.parse("embedded", postgresURL: nil) == [.embedded])
        #expect(try LabBackendSpec.parse("all", postgresURL: nil) == [.embedded, .httpInProcess])
        #expect(
            try LabBackendSpec.parse("all", postgresURL: "postgres://u@127.0.0.1:5432/db")
                == [.embedded, .postgres(url: "postgres://u@127.0.0.1:5432/db"), .httpInProcess])
        #expect(
            try LabBackendSpec.parse("all", postgresURL: "", httpURL: "http://127.0.0.1:7070")
                == [.embedded, .http(url: "http://127.0.0.1:7070", token: nil)])
        #expect(try LabBackendSpec.parse("http://h:1", postgresURL: nil) == [.http(url: "http://h:1", token: nil)])
        #expect(throws: IsoKVError.self) { try LabBackendSpec.parse("mysql://x", postgresURL: nil) }
        #expect(throws: (any Error).self) { try LabBackendSpec.parse("postgres://", postgresURL: nil) }
        #expect(!LabBackendSpec.http(url: "http://h:1", token: nil).isolatesRuns)
        #expect(LabBackendSpec.httpInProcess.isolatesRuns)
    }

    @Test("the in-process server backend gives each run its own store and stops it afterwards")
    func inProcessServer() async throws {
        let backend = HTTPLabBackend(mode: .inProcess)
        let a = try await backend.makeStore(.init())
        let b = try await backend.makeStore(.init())
        _ = try await a.put("k", "a")
        #expect(try await b.get("k") == nil)
        await backend.discardStore(a)
        await #expect(throws: (any Error).self) { _ = try await a.get("k") }
        #expect(try await b.get("k") == nil)
        await backend.discardStore(b)
    }
}

@Suite("Lab CLI")
struct LabCLITests {
    @Test("isokv lab lost-update --quick --backend all --format json: every strategy on embedded and HTTP")
    func lostUpdateAll() throws {
        let run = try IsokvExecutable.run([
            "lab", "lost-update", "--quick", "--backend", "all", "--postgres", "", "--format", "json", "--seed", "4"
        ])
        #expect(run.status == 0, "\(run.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        let results = try #require(json?["results"] as? [[String: Any]])
        #expect(results.count == 2 * LostUpdateStrategy.allCases.count)
        #expect(Set(results.compactMap { $0["backend"] as? String }) == ["embedded", "http"])
        #expect(!results.contains { $0["correctness"] as? String == "FAIL" })
        #expect(run.stderr.isEmpty, "no progress bar when stderr is not a terminal: \(run.stderr)")
    }

    @Test("a malformed backend is a clear error")
    func badBackend() throws {
        let run = try IsokvExecutable.run(["lab", "lost-update", "--quick", "--backend", "mysql://x"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("unknown backend"), "\(run.stderr)")
    }
}

@Suite("Lab baseline")
struct LabBaselineTests {
    @Test("SQLite (GRDB) beside the engine: every workload measured on both, the counters exact")
    func quick() async throws {
        let results = try await BaselineExperiment(.quick(seed: testSeed("lab baseline"))).run()
        #expect(results.map(\.workload) == BaselineWorkload.allCases)
        for r in results {
            #expect(r.embeddedOperations > 0 && r.sqliteOperations > 0, "\(r)")
            #expect(r.embeddedOpsPerSecond > 0 && r.sqliteOpsPerSecond > 0)
            #expect(abs(r.ratio - r.embeddedOpsPerSecond / r.sqliteOpsPerSecond) < 1e-9)
            #expect(r.countersExact == (r.workload == .counter ? true : nil), "\(r)")
        }
    }

    @Test("the SQLite store reads back what it wrote")
    func sqliteStore() async throws {
        let store = try await SQLiteBaselineStore(keys: 10, valueSize: 8)
        defer { try? store.close() }
        for _ in 0..<5 { try await store.increment() }
        #expect(try await store.counter() == 5)
        try await store.update(3, Array("new".utf8))
        try await store.read(3)
    }
}
