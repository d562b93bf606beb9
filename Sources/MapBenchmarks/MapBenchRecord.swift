import Foundation

/// One JSON record of `isokv bench maps --format json` (and of the Go peer's output): one workload, one
/// implementation, one thread count.
///
/// Schema (stable; fields are only ever added):
///
/// | field            | type          | meaning                                                                   |
/// |------------------|---------------|---------------------------------------------------------------------------|
/// | `workload`       | string        | a ``MapWorkload`` raw value, e.g. `"load-mostly-hits"`                     |
/// | `implementation` | string        | `"MutexMap"`, `"ReadMostlyMap"`, …; peers are prefixed, `"go:sync.Map"`   |
/// | `threads`        | int           | worker threads (GOMAXPROCS for Go)                                        |
/// | `ops_per_sec`    | number        | operations (loop iterations) per second, all threads together            |
/// | `operations`     | int           | operations counted in the measured interval                               |
/// | `seconds`        | number        | length of the measured interval                                           |
/// | `ratio_to_mutex` | number / null | `ops_per_sec` ÷ that of `baseline`, same workload and threads             |
/// | `baseline`       | string        | the implementation `ratio_to_mutex` divides by (`"MutexMap"`)             |
/// | `scaling`        | number / null | `ops_per_sec` ÷ this implementation's own 1-thread figure (null if absent)|
/// | `source`         | string        | who measured it: `"isokv"` or the peer, e.g. `"go1.19.8"`                 |
///
/// ```json
/// {"workload": "load-mostly-hits", "implementation": "ReadMostlyMap", "threads": 2, "ops_per_sec": 1.1e8,
///  "operations": 110000000, "seconds": 1.0, "ratio_to_mutex": 4.2, "baseline": "MutexMap", "scaling": 1.9,
///  "source": "isokv"}
/// ```
public struct MapBenchRecord: Codable, Sendable, Equatable {
    public var workload: String
    public var implementation: String
    public var threads: Int
    public var opsPerSec: Double
    public var operations: Int
    public var seconds: Double
    public var ratioToMutex: Double?
    public var baseline: String
    public var scaling: Double?
    public var source: String

    enum CodingKeys: String, CodingKey {
        case workload, implementation, threads
        case opsPerSec = "ops_per_sec"
        case operations, seconds
        case ratioToMutex = "ratio_to_mutex"
        case baseline, scaling, source
    }

    public init(_ m: Measurement, source: String = "isokv") {
        workload = m.workload.rawValue
        implementation = m.implementation
        threads = m.threads
        opsPerSec = m.opsPerSecond
        operations = m.operations
        seconds = m.seconds
        ratioToMutex = nil
        baseline = MapImplementation.baselineName
        scaling = nil
        self.source = source
    }

    // Explicit so that nil ratios are written as `null` (the schema lists the field), not left out.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(workload, forKey: .workload)
        try c.encode(implementation, forKey: .implementation)
        try c.encode(threads, forKey: .threads)
        try c.encode(opsPerSec, forKey: .opsPerSec)
        try c.encode(operations, forKey: .operations)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(ratioToMutex, forKey: .ratioToMutex)
        try c.encode(baseline, forKey: .baseline)
        try c.encode(scaling, forKey: .scaling)
        try c.encode(source, forKey: .source)
    }

    /// Fills `ratio_to_mutex` (against the `baseline` implementation's record of `baselines` at the same workload
    /// and thread count) and `scaling` (against this implementation's own 1-thread record in `records`).
    /// Records with no matching baseline or 1-thread figure get null.
    public static func derive(
        _ records: [MapBenchRecord], baselines: [MapBenchRecord], baseline: String = MapImplementation.baselineName
    ) -> [MapBenchRecord] {
        struct Key: Hashable { var workload: String; var implementation: String; var threads: Int }
        var base: [Key: Double] = [:]
        for r in baselines where r.implementation == baseline {
            base[Key(workload: r.workload, implementation: baseline, threads: r.threads)] = r.opsPerSec
        }
        var single: [Key: Double] = [:]
        for r in records where r.threads == 1 {
            single[Key(workload: r.workload, implementation: r.implementation, threads: 1)] = r.opsPerSec
        }
        return records.map { r in
            var r = r
            r.baseline = baseline
            let b = base[Key(workload: r.workload, implementation: baseline, threads: r.threads)]
            r.ratioToMutex = b.flatMap { $0 > 0 ? r.opsPerSec / $0 : nil }
            let s = single[Key(workload: r.workload, implementation: r.implementation, threads: 1)]
            r.scaling = s.flatMap { $0 > 0 ? r.opsPerSec / $0 : nil }
            return r
        }
    }
}

/// The whole JSON document: `{"title", "parameters": {name: value}, "results": [MapBenchRecord…]}` — the shape
/// `isokv`'s `Report` writes and the Go peer writes, and what `--peer FILE` reads.
public struct MapBenchDocument: Codable, Sendable {
    public var title: String
    public var parameters: [String: String]
    public var results: [MapBenchRecord]

    public init(title: String, parameters: [String: String], results: [MapBenchRecord]) {
        self.title = title
        self.parameters = parameters
        self.results = results
    }

    /// Reads a document written by `isokv bench maps --format json` or by the Go peer.
    public static func decode(_ data: Data) throws -> MapBenchDocument {
        try JSONDecoder().decode(MapBenchDocument.self, from: data)
    }
}
