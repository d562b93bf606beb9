import Foundation
import IsoKV
import IsoKVCore
import IsoKVSync
import IsoKVWorkloads

/// The point operations the baseline compares, on one store: read a key, overwrite a key, add one to the counter.
/// Each is its own transaction (autocommit), as a single-key call is on the engine.
public protocol BaselineStore: Sendable {
    var name: String { get }
    func read(_ key: Int) async throws
    func update(_ key: Int, _ value: [UInt8]) async throws
    /// Adds one to the hot counter.
    func increment() async throws
    /// The counter's value (checked against the increments that returned).
    func counter() async throws -> Int64
}

/// The embedded engine, in memory, through its single-key calls.
public struct EmbeddedBaselineStore: BaselineStore {
    public let name = "embedded"
    let db: Database

    public init(keys: Int, valueSize: Int) async throws {
        db = Database.inMemory()
        let value = Bytes([UInt8](repeating: 0x61, count: valueSize))
        for i in 0..<keys { _ = try await db.put(Self.key(i), value) }
        _ = try await db.put("counter", Bytes(Int64(0)))
    }

    static func key(_ i: Int) -> Bytes { Bytes("user\(i)") }

    public func read(_ key: Int) async throws { _ = try await db.get(Self.key(key)) }
    public func update(_ key: Int, _ value: [UInt8]) async throws { _ = try await db.put(Self.key(key), Bytes(value)) }
    public func increment() async throws { _ = try await db.increment("counter") }
    public func counter() async throws -> Int64 { try await db.get("counter")?.value.int64 ?? -1 }
}

/// The baseline's workloads: YCSB's point mixes and the hot counter.
public enum BaselineWorkload: String, Hashable, Sendable, Codable, CaseIterable {
    /// 50% reads, 50% updates, Zipfian keys.
    case ycsbA = "ycsb-a"
    /// 95% reads, 5% updates.
    case ycsbB = "ycsb-b"
    /// 100% reads.
    case ycsbC = "ycsb-c"
    /// Every operation adds one to one counter.
    case counter

    var readFraction: Double {
        switch self {
        case .ycsbA: return 0.5
        case .ycsbB: return 0.95
        case .ycsbC: return 1
        case .counter: return 0
        }
    }
}

public struct BaselineParameters: Hashable, Sendable, Codable {
    public var tasks: Int
    public var keys: Int
    public var valueSize: Int
    /// Measured time per workload and store, split into `slices` alternating slices (embedded, sqlite, embedded…)
    /// so that drift in the machine's load hits both alike.
    public var seconds: Double
    public var slices: Int
    /// Zipfian skew of the key choice (YCSB's 0.99).
    public var theta: Double
    public var seed: UInt64

    public init(
        tasks: Int = 4, keys: Int = 10_000, valueSize: Int = 100, seconds: Double = 2, slices: Int = 4,
        theta: Double = 0.99, seed: UInt64 = 1
    ) {
        self.tasks = tasks
        self.keys = keys
        self.valueSize = valueSize
        self.seconds = seconds
        self.slices = slices
        self.theta = theta
        self.seed = seed
    }

    public static func quick(seed: UInt64 = 1) -> BaselineParameters {
        BaselineParameters(tasks: 2, keys: 1_000, seconds: 0.4, slices: 2, seed: seed)
    }
}

/// One workload on both stores, in one run.
public struct BaselineResult: Hashable, Sendable, Codable {
    public var workload: BaselineWorkload
    public var embeddedOpsPerSecond: Double
    public var sqliteOpsPerSecond: Double
    /// Embedded throughput ÷ SQLite throughput.
    public var ratio: Double
    public var embeddedP50Nanoseconds: Double
    public var embeddedP99Nanoseconds: Double
    public var sqliteP50Nanoseconds: Double
    public var sqliteP99Nanoseconds: Double
    public var embeddedOperations: Int
    public var sqliteOperations: Int
    /// For `counter`: each store's counter equals the increments that returned (nil for the YCSB mixes).
    public var countersExact: Bool?
}

/// The `baseline` experiment: SQLite through GRDB, the embedded peer users know, beside the embedded engine, the same
/// operation loop on both, in the same run, with the ratio.
///
/// ```swift
/// let rows = try await BaselineExperiment(.quick()).run()
/// print(rows.map { "\($0.workload): \($0.ratio)x" })
/// ```
public struct BaselineExperiment: Sendable {
    public var parameters: BaselineParameters

    public init(_ parameters: BaselineParameters) { self.parameters = parameters }

    public func run(
        _ workloads: [BaselineWorkload] = BaselineWorkload.allCases, progress: (@Sendable (String) -> Void)? = nil
    )
        async throws -> [BaselineResult]
    {
        let p = parameters
        let embedded = try await EmbeddedBaselineStore(keys: p.keys, valueSize: p.valueSize)
        let sqlite = try await SQLiteBaselineStore(keys: p.keys, valueSize: p.valueSize)
        defer { try? sqlite.close() }
        var results: [BaselineResult] = []
        for workload in workloads {
            progress?("baseline \(workload.rawValue)")
            let e0 = try await embedded.counter()
            let s0 = try await sqlite.counter()
            var e = Measured()
            var s = Measured()
            let slice = p.seconds / Double(max(1, p.slices))
            for k in 0..<max(1, p.slices) {
                e.add(try await measure(workload, on: embedded, seconds: slice, salt: UInt64(2 * k)))
                s.add(try await measure(workload, on: sqlite, seconds: slice, salt: UInt64(2 * k + 1)))
            }
            var exact: Bool? = nil
            if workload == .counter {
                let e1 = try await embedded.counter()
                let s1 = try await sqlite.counter()
                exact = e1 - e0 == Int64(e.operations) && s1 - s0 == Int64(s.operations)
            }
            results.append(
                BaselineResult(
                    workload: workload, embeddedOpsPerSecond: e.rate, sqliteOpsPerSecond: s.rate,
                    ratio: s.rate > 0 ? e.rate / s.rate : .infinity, embeddedP50Nanoseconds: e.latencies.p50,
                    embeddedP99Nanoseconds: e.latencies.p99, sqliteP50Nanoseconds: s.latencies.p50,
                    sqliteP99Nanoseconds: s.latencies.p99, embeddedOperations: e.operations,
                    sqliteOperations: s.operations, countersExact: exact))
        }
        return results
    }

    struct Measured {
        var operations = 0
        var seconds = 0.0
        var latencies = LatencyHistogram()
        var rate: Double { seconds > 0 ? Double(operations) / seconds : 0 }

        mutating func add(_ other: Measured) {
            operations += other.operations
            seconds += other.seconds
            latencies.merge(other.latencies)
        }
    }

    /// `tasks` tasks run the workload's operations on `store` until `seconds` have passed (each at least one).
    func measure(_ workload: BaselineWorkload, on store: some BaselineStore, seconds: Double, salt: UInt64)
        async throws -> Measured
    {
        let p = parameters
        let keys = ScrambledZipfian(count: p.keys, theta: p.theta)
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(Int64(seconds * 1000))
        let value = [UInt8](repeating: 0x62, count: p.valueSize)
        var total = Measured()
        try await withThrowingTaskGroup(of: Measured.self) { group in
            for t in 0..<p.tasks {
                group.addTask {
                    var rng = SplitMix64(seed: p.seed &+ salt &* 1_000_003 &+ UInt64(t) &* 0x9e37_79b9_7f4a_7c15)
                    var m = Measured()
                    // At least one operation per task: a task first scheduled after the deadline (a starved machine)
                    // still measures something, and the elapsed time below covers it.
                    repeat {
                        let begin = clock.now
                        if workload == .counter {
                            try await store.increment()
                        } else if rng.nextUnitInterval() < workload.readFraction {
                            try await store.read(keys.next(using: &rng))
                        } else {
                            try await store.update(keys.next(using: &rng), value)
                        }
                        m.latencies.record(clock.now - begin)
                        m.operations += 1
                    } while clock.now < deadline
                    return m
                }
            }
            for try await m in group {
                total.operations += m.operations
                total.latencies.merge(m.latencies)
            }
        }
        total.seconds = (clock.now - start) / .seconds(1)
        return total
    }
}
