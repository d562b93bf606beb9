import Foundation
import IsoKVTestSupport
import Testing

/// `scripts/bench-engine-vs-lmdb` end to end with tiny runs: it installs liblmdb-dev if needed, compiles the LMDB
/// peer, runs it and `isokv bench engine` (this build's debug binary) on the same workloads and prints the ratios.
/// A smoke test: it checks the output's shape and that both sides really worked (operations, scans, the ratio is
/// the quotient of the two figures), never the figures' size.
@Suite("isokv engine vs LMDB smoke", .serialized)
struct BenchEngineVsLMDBSmokeTests {
    static let script = ChildProcess.repository + "/scripts/bench-engine-vs-lmdb"

    struct Envelope: Decodable {
        var title: String
        var parameters: [String: JSONValue]
        var results: [Row]
    }

    struct Row: Decodable {
        var workload: String
        var isokvOpsPerSecond: Double
        var lmdbOpsPerSecond: Double
        var ratio: Double
        var ratioMin: Double
        var ratioMax: Double
    }

    /// A parameter's value: the script prints numbers and strings.
    enum JSONValue: Decodable {
        case number(Double), string(String)
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let d = try? c.decode(Double.self) {
                self = .number(d)
            } else {
                self = .string(try c.decode(String.self))
            }
        }
    }

    struct PeerOutput: Decodable {
        var peer: String
        var workload: String
        var operations: Int
        var scans: Int
        var keysScanned: Int
    }

    @Test("the script runs both sides on every workload asked for and prints their ratio")
    func scriptPrintsRatios() async throws {
        let isokv = try IsokvExecutable.path()
        let r = try await ChildProcess.run(
            Self.script,
            [
                "--isokv", isokv, "--workloads", "ycsb-c,ycsb-a,ycsb-e", "--seconds", "0.2", "--rounds", "1",
                "--keys", "2000", "--format", "json", "--peer-dir", ChildProcess.repository + "/.build/lmdb-peer"
            ])
        try #require(r.status == 0, "\(r.stderr.suffix(2000))")
        let out = try JSONDecoder().decode(Envelope.self, from: Data(r.stdout.utf8))
        #expect(out.title == "isokv engine vs LMDB")
        // ycsb-c's reads through `Transaction` objects begun by hand, and ycsb-c's and ycsb-e's reads through the
        // read snapshots (`Database.read`, `Database.withSnapshot`), come last, each against the same LMDB runs as
        // its workload.
        #expect(
            out.results.map(\.workload) == [
                "ycsb-c", "ycsb-a", "ycsb-e", "ycsb-c, begin/get/commit", "ycsb-c, Database.read",
                "ycsb-c, withSnapshot",
                "ycsb-e, Database.read", "ycsb-e, withSnapshot"
            ])
        if out.results.count == 8 {
            for i in 3...5 { #expect(out.results[i].lmdbOpsPerSecond == out.results[0].lmdbOpsPerSecond) }
            for i in 6...7 { #expect(out.results[i].lmdbOpsPerSecond == out.results[2].lmdbOpsPerSecond) }
        }
        for row in out.results {
            #expect(row.isokvOpsPerSecond > 0 && row.lmdbOpsPerSecond > 0, "\(row)")
            #expect(abs(row.ratio - row.isokvOpsPerSecond / row.lmdbOpsPerSecond) < 1e-9 * max(1, row.ratio))
            #expect(row.ratioMin <= row.ratio && row.ratio <= row.ratioMax)
        }
        guard case .string(let peer) = out.parameters["peer"] else {
            Issue.record("no peer parameter: \(out.parameters)")
            return
        }
        #expect(peer.hasPrefix("LMDB "))
        // The allocator every isokv run printed (the script installs jemalloc, which isokv then preloads).
        guard case .string(let allocator) = out.parameters["isokv allocator"] else {
            Issue.record("no isokv allocator parameter: \(out.parameters)")
            return
        }
        #expect(allocator.hasPrefix("jemalloc "), "\(allocator)")
    }

    @Test("the LMDB peer reads every key it chooses and scans in order (it checks its end state itself)")
    func peerRunsAndChecksItself() async throws {
        let dir = ChildProcess.repository + "/.build/lmdb-peer"
        let install = try await ChildProcess.run(Self.script, ["--install-only", "--peer-dir", dir])
        try #require(install.status == 0, "\(install.stderr.suffix(2000))")
        for workload in ["ycsb-c", "ycsb-f", "ycsb-e"] {
            let r = try await ChildProcess.run(
                dir + "/ycsb", ["--workload", workload, "--seconds", "0.1", "--keys", "3000", "--threads", "2"])
            try #require(r.status == 0, "\(workload): \(r.stderr)")
            let out = try JSONDecoder().decode(PeerOutput.self, from: Data(r.stdout.utf8))
            #expect(out.workload == workload && out.operations > 0, "\(out)")
            if workload == "ycsb-e" {
                #expect(out.scans > 0 && out.keysScanned >= out.scans, "\(out)")
            }
        }
        // Bad arguments are refused with status 2 and a message, not run.
        let bad = try await ChildProcess.run(dir + "/ycsb", ["--workload", "ycsb-z"])
        #expect(bad.status == 2 && bad.stderr.contains("unknown workload"))
        let badKeys = try await ChildProcess.run(dir + "/ycsb", ["--keys", "1"])
        #expect(badKeys.status == 2)
    }
}
