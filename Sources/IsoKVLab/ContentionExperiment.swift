import Foundation
import IsoKVConformance
import IsoKVCore
import IsoKVWorkloads

/// The parameters of a `contention` sweep.
public struct ContentionParameters: Hashable, Sendable, Codable {
    /// The clients axis.
    public var clients: [Int]
    /// The skew axis: 0 = uniform over the counters; otherwise Zipfian with this θ.
    public var thetas: [Double]
    public var strategies: [LostUpdateStrategy]
    /// Counters the operations choose from.
    public var counters: Int
    /// Operations per cell, all clients together (at least 4 per client).
    public var operations: Int
    /// The time budget of one operation of the `…-budget` strategies, in milliseconds.
    public var budgetMilliseconds: Int
    public var seed: UInt64

    public init(
        clients: [Int] = [1, 4, 16, 64, 256], thetas: [Double] = [0, 0.5, 0.99, 1.2],
        strategies: [LostUpdateStrategy] = LostUpdateStrategy.allCases.filter(\.preventsLostUpdates),
        counters: Int = 64, operations: Int = 2_000, budgetMilliseconds: Int = 2_000, seed: UInt64 = 1
    ) {
        self.clients = clients
        self.thetas = thetas
        self.strategies = strategies
        self.counters = counters
        self.operations = operations
        self.budgetMilliseconds = budgetMilliseconds
        self.seed = seed
    }

    public static func quick(seed: UInt64 = 1) -> ContentionParameters {
        ContentionParameters(
            clients: [1, 8, 32], thetas: [0, 1.2],
            strategies: [.rowLock, .snapshotRetry, .compareAndSet, .atomicIncrement, .partitionedWriter],
            counters: 16, operations: 160, seed: seed)
    }
}

/// Picks a counter: uniform for θ = 0; Zipfian (IsoKVWorkloads' `ZipfianGenerator`) for 0 < θ < 1; for θ ≥ 1,
/// where that generator's closed form does not apply, the exact distribution by its cumulative table (the counters
/// are few).
struct CounterChooser: Sendable {
    let count: Int
    let theta: Double
    let zipfian: ZipfianGenerator?
    let cumulative: [Double]

    init(count: Int, theta: Double) {
        self.count = count
        self.theta = theta
        if theta > 0 && theta < 1 {
            zipfian = ZipfianGenerator(count: count, theta: theta)
            cumulative = []
        } else if theta >= 1 {
            zipfian = nil
            var sum = 0.0
            var table: [Double] = []
            for r in 0..<count {
                sum += 1 / pow(Double(r + 1), theta)
                table.append(sum)
            }
            cumulative = table.map { $0 / sum }
        } else {
            zipfian = nil
            cumulative = []
        }
    }

    func next(using rng: inout SplitMix64) -> Int {
        if let zipfian { return zipfian.nextRank(using: &rng) }
        if cumulative.isEmpty { return rng.next(below: count) }
        let u = rng.nextUnitInterval()
        var lo = 0
        var hi = count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// One cell of the sweep: a strategy at a number of clients and a skew.
public struct ContentionCell: Hashable, Sendable, Codable {
    public var backend: String
    public var strategy: LostUpdateStrategy
    public var clients: Int
    public var theta: Double
    public var operations: Int
    public var committed: Int
    public var gaveUp: Int
    public var otherErrors: [String: Int]
    public var retries: Int
    public var opsPerSecond: Double
    public var p50Nanoseconds: Double
    public var p99Nanoseconds: Double
    /// Failed attempts ÷ attempts (retries ÷ (retries + operations)).
    public var abortRate: Double
    /// Operations that gave up ÷ operations.
    public var giveUpRate: Double
    /// Sum of the counters = reaction rows = committed.
    public var correct: Bool
}

/// The sweep of one strategy on one backend, shaped for a chart: `opsPerSecond[i][j]` is `clients[i]` at `thetas[j]`.
public struct ContentionSurface: Hashable, Sendable, Codable {
    public var backend: String
    public var strategy: LostUpdateStrategy
    public var clients: [Int]
    public var thetas: [Double]
    public var opsPerSecond: [[Double]]
    public var abortRate: [[Double]]
    public var giveUpRate: [[Double]]
    public var correct: [[Bool]]
    public var cells: [ContentionCell]
}

/// The `contention` experiment: clients × key skew for the lost-update strategies (seed 004's claim: optimistic
/// strategies pay while conflicts are rare; under contention pessimistic locking wins).
///
/// ```swift
/// let surfaces = try await ContentionExperiment(.quick()).run(on: EmbeddedLabBackend())
/// print(surfaces[0].strategy, surfaces[0].opsPerSecond)
/// ```
public struct ContentionExperiment: Sendable {
    public var parameters: ContentionParameters
    public var progress: LabProgress

    public init(_ parameters: ContentionParameters, progress: LabProgress = LabProgress()) {
        self.parameters = parameters
        self.progress = progress
    }

    public func run<Backend: LabBackend>(on backend: Backend) async throws -> [ContentionSurface] {
        let p = parameters
        progress.plan(p.strategies.count * p.clients.count * p.thetas.count, "contention on \(backend.name)")
        var surfaces: [ContentionSurface] = []
        for strategy in p.strategies {
            let cells = try await backend.withStore { store in
                var cells: [ContentionCell] = []
                for clients in p.clients {
                    for theta in p.thetas {
                        progress.label(
                            "contention \(strategy.rawValue) \(clients) clients θ=\(theta) on \(backend.name)")
                        cells.append(
                            try await cell(
                                strategy, clients: clients, theta: theta, store: store, backend: backend.name))
                        progress.advance()
                    }
                }
                return cells
            }
            func grid<T>(_ f: (ContentionCell) -> T) -> [[T]] {
                p.clients.indices.map { i in p.thetas.indices.map { j in f(cells[i * p.thetas.count + j]) } }
            }
            surfaces.append(
                ContentionSurface(
                    backend: backend.name, strategy: strategy, clients: p.clients, thetas: p.thetas,
                    opsPerSecond: grid(\.opsPerSecond), abortRate: grid(\.abortRate), giveUpRate: grid(\.giveUpRate),
                    correct: grid(\.correct), cells: cells))
        }
        return surfaces
    }

    func cell<Store: KeyValueStore>(
        _ strategy: LostUpdateStrategy, clients: Int, theta: Double, store: Store, backend: String
    ) async throws -> ContentionCell {
        let p = parameters
        let keys = LostUpdateExperiment.Keys(Keyspace())
        let counters = (0..<p.counters).map { keys.space.key("counter/\($0)") }
        for k in counters { _ = try await store.put(k, Bytes(Int64(0))) }
        let operations = max(p.operations, 4 * clients)
        let lp = LostUpdateParameters(operations: operations, seed: p.seed, budgetMilliseconds: p.budgetMilliseconds)
        let retries = Tally()
        let writer =
            strategy == .partitionedWriter
            ? PartitionedWriter(
                store: store, partitions: lp.partitions, maxBatch: lp.maxBatch, roundTrip: RoundTrip(microseconds: 0))
            : nil
        let operation = Operation(
            strategy: strategy, db: store, keys: keys, retries: retries, writer: writer, parameters: lp,
            roundTrip: RoundTrip(microseconds: 0))
        let chooser = CounterChooser(count: p.counters, theta: theta)
        let perClient = (0..<clients).map { c in operations / clients + (c < operations % clients ? 1 : 0) }
        let clock = ContinuousClock()
        let start = clock.now
        var latencies = LatencyHistogram()
        var committed = 0
        var gaveUp = 0
        var other: [String: Int] = [:]
        await withTaskGroup(of: (LatencyHistogram, Int, Int, [String: Int]).self) { group in
            var first = 0
            for c in 0..<clients {
                let base = first
                first += perClient[c]
                group.addTask {
                    var rng = SplitMix64(seed: p.seed &+ UInt64(c + 1) &* 0x9e37_79b9_7f4a_7c15)
                    var latencies = LatencyHistogram()
                    var committed = 0
                    var gaveUp = 0
                    var other: [String: Int] = [:]
                    for k in 0..<perClient[c] {
                        let counter = counters[chooser.next(using: &rng)]
                        let begin = clock.now
                        switch await operation.perform(base + k, counter: counter) {
                        case .committed: committed += 1
                        case .gaveUp: gaveUp += 1
                        case .failed(let code): other[code, default: 0] += 1
                        }
                        latencies.record(clock.now - begin)
                    }
                    return (latencies, committed, gaveUp, other)
                }
            }
            for await (l, c, g, o) in group {
                latencies.merge(l)
                committed += c
                gaveUp += g
                other.merge(o, uniquingKeysWith: +)
            }
        }
        let wall = (clock.now - start) / .seconds(1)
        await writer?.finish()
        var sum: Int64 = 0
        for k in counters { sum += try await store.get(k)?.value.int64 ?? 0 }
        let rows = try await store.transaction(.snapshot, readOnly: true) { tx in
            try await tx.scan(prefix: keys.reactionPrefix).count
        }
        let attempts = retries.count + operations
        return ContentionCell(
            backend: backend, strategy: strategy, clients: clients, theta: theta, operations: operations,
            committed: committed, gaveUp: gaveUp, otherErrors: other, retries: retries.count,
            opsPerSecond: wall > 0 ? Double(committed) / wall : 0, p50Nanoseconds: latencies.p50,
            p99Nanoseconds: latencies.p99, abortRate: Double(retries.count) / Double(attempts),
            giveUpRate: Double(gaveUp) / Double(operations),
            correct: sum == Int64(committed) && rows == committed)
    }
}
