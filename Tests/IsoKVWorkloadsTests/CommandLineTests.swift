import Foundation
import IsoKVTestSupport
import Testing

/// `isokv bench engine` as a user runs it (short runs: these check the output's shape, not the figures).
@Suite("Workloads bench engine command line")
struct BenchEngineCommandLineTests {
    struct Document: Decodable {
        struct Record: Decodable {
            var operation: String
            var opsPerSecond: Double
            var p50Nanoseconds: Double
            var p99Nanoseconds: Double
            var p999Nanoseconds: Double
            var ratioToRawMap: Double
            var aborts: [String: Int]
            var retries: Int
            var gaveUp: Int
        }
        var title: String
        var parameters: [String: String]
        var results: [Record]
    }

    func run(_ arguments: [String]) throws -> Document {
        let result = try IsokvExecutable.run(
            [
                "bench", "engine", "--format", "json", "--seconds", "0.05", "--warmup", "0.01",
                "--keys", "300", "--threads", "2"
            ] + arguments)
        #expect(result.status == 0, "\(result.stderr)")
        return try JSONDecoder().decode(Document.self, from: Data(result.stdout.utf8))
    }

    /// A field of `isokv allocator`'s output: its text, or the environment object (not compared here).
    enum AllocatorField: Decodable, Equatable {
        case text(String), object
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            self = (try? container.decode(String.self)).map(Self.text) ?? .object
        }
    }

    @Test("smoke: ycsb-b JSON has the six rows, the raw map as the 1.00x baseline, figures > 0")
    func ycsbBSmoke() throws {
        let doc = try run(["--workload", "ycsb-b"])
        #expect(doc.title == "isokv bench engine")
        #expect(doc.parameters["workload"] == "ycsb-b")
        // The allocator in effect is printed (array scans depend on it): the one `isokv allocator` reports.
        let allocator = try IsokvExecutable.run(["allocator"])
        #expect(allocator.status == 0, "\(allocator.stderr)")
        let chosen = try JSONDecoder().decode([String: AllocatorField].self, from: Data(allocator.stdout.utf8))
        #expect(doc.parameters["allocator"] != nil)
        #expect(chosen["allocator"] == .text(doc.parameters["allocator"] ?? ""))
        #expect(
            doc.results.map(\.operation) == [
                "raw map load", "db.get", "tx get (snapshot, ro)", "db.read get (sync)",
                "db.withSnapshot get (async)", "ycsb-b @ snapshot"
            ])
        #expect(doc.results.first?.ratioToRawMap == 1)
        for r in doc.results {
            #expect(r.opsPerSecond > 0 && r.p50Nanoseconds > 0, "\(r.operation)")
            #expect(r.p50Nanoseconds <= r.p99Nanoseconds && r.p99Nanoseconds <= r.p999Nanoseconds, "\(r.operation)")
        }
    }

    @Test("smoke: serializable write-skew adds the same workload at snapshot as a last row")
    func serializableSmoke() throws {
        let doc = try run(["--workload", "write-skew", "--isolation", "serializable"])
        #expect(
            doc.results.map(\.operation) == [
                "raw map load", "db.get", "tx get (snapshot, ro)", "db.read get (sync)",
                "db.withSnapshot get (async)", "write-skew @ serializable", "write-skew @ snapshot"
            ])
        #expect(doc.results.allSatisfy { $0.opsPerSecond > 0 })
        #expect(doc.results.allSatisfy { $0.retries <= $0.aborts.values.reduce(0, +) })
    }

    @Test("smoke: ycsb-e adds its scans through Database.read and Database.withSnapshot as last rows, with scan notes")
    func ycsbEReadRowSmoke() throws {
        let doc = try run(["--workload", "ycsb-e"])
        #expect(
            doc.results.map(\.operation).suffix(3) == [
                "ycsb-e @ snapshot", "ycsb-e, db.read forEach (sync)", "ycsb-e, db.withSnapshot forEach (async)"
            ])
        #expect(doc.results.allSatisfy { $0.opsPerSecond > 0 })
        let result = try IsokvExecutable.run(
            ["bench", "engine", "--workload", "ycsb-e", "--seconds", "0.05", "--warmup", "0.01", "--keys", "300"])
        #expect(result.stdout.contains("in the ycsb-e, db.read forEach (sync) row."), "\(result.stdout)")
        #expect(result.stdout.contains("in the ycsb-e @ snapshot row."), "\(result.stdout)")
        #expect(result.stdout.contains("in the ycsb-e, db.withSnapshot forEach (async) row."), "\(result.stdout)")
    }

    @Test("--hold-snapshot keeps one snapshot open through the rows; its versions go when it ends")
    func holdSnapshot() throws {
        #expect(try run(["--workload", "ycsb-a", "--hold-snapshot"]).parameters["snapshot held open"] == "yes")
        #expect(try run(["--workload", "ycsb-a"]).parameters["snapshot held open"] == "no")
        let result = try IsokvExecutable.run(
            [
                "bench", "engine", "--workload", "ycsb-a", "--seconds", "0.05", "--warmup", "0.01", "--keys", "300",
                "--hold-snapshot"
            ])
        #expect(result.status == 0, "\(result.stderr)")
        let note = try #require(
            result.stdout.firstMatch(of: /(\d+) versions were held when it ended \((\d+) after\)/),
            "\(result.stdout)")
        let (held, after) = (Int(note.output.1)!, Int(note.output.2)!)
        // The updates made while it was open stayed (one version per key at least, plus the updates), and went
        // with it: one version per key is left.
        #expect(held > after, "\(note.output.0)")
        #expect(after <= 301, "\(note.output.0)")
        let refused = try IsokvExecutable.run(
            ["bench", "engine", "--hold-snapshot", "--backend", "postgres://nobody@127.0.0.1:1/none"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("--hold-snapshot"), "\(refused.stderr)")
    }

    @Test("an unknown workload is refused with the list of workloads")
    func unknownWorkload() throws {
        let result = try IsokvExecutable.run(["bench", "engine", "--workload", "ycsb-z"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("ycsb-a"), "\(result.stderr)")
    }
}
