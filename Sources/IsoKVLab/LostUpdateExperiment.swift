import IsoKVConformance
import IsoKVCore
import IsoKVWorkloads

/// The parameters of one `lost-update` run.
public struct LostUpdateParameters: Hashable, Sendable, Codable {
    /// Concurrent operations, one task each, all on the same thread's counter (the seed: 100).
    public var operations: Int
    /// Fixes the order the tasks are started in and the backoff jitter; the interleaving is the scheduler's.
    public var seed: UInt64
    /// The time budget of one operation for the `…-budget` strategies, in milliseconds.
    public var budgetMilliseconds: Int
    /// Attempts of the serializable strategy before it gives up.
    public var serializableMaxAttempts: Int
    /// Owner tasks of the partitioned writer.
    public var partitions: Int
    /// Most requests one owner applies in one transaction.
    public var maxBatch: Int
    /// A simulated client–server round trip paid before each statement (a suspension, `Task.sleep`), in
    /// microseconds; 0 (the default) runs the statements back to back, as in-process calls.
    public var statementLatencyMicroseconds: Int

    public init(
        operations: Int = 100, seed: UInt64 = 1, budgetMilliseconds: Int = 2_000, serializableMaxAttempts: Int = 1_000,
        partitions: Int = 4, maxBatch: Int = 64, statementLatencyMicroseconds: Int = 0
    ) {
        self.operations = operations
        self.seed = seed
        self.budgetMilliseconds = budgetMilliseconds
        self.serializableMaxAttempts = serializableMaxAttempts
        self.partitions = partitions
        self.maxBatch = maxBatch
        self.statementLatencyMicroseconds = statementLatencyMicroseconds
    }
}

/// What one strategy did with N concurrent reactions, and whether the end state is right.
public struct LostUpdateResult: Hashable, Sendable, Codable {
    /// The backend's name (`embedded`, `postgresql`, `http`).
    public var backend: String
    public var strategy: LostUpdateStrategy
    public var claimsToPreventLostUpdates: Bool
    /// N.
    public var operations: Int
    /// Operations that reported success.
    public var committed: Int
    /// Operations that ran out of tries or time and reported failure (`40001`, `IK412`).
    public var gaveUp: Int
    /// Operations that failed with any other error, by code.
    public var otherErrors: [String: Int]
    /// Attempts that failed and were tried again, all operations together.
    public var retries: Int
    public var wallSeconds: Double
    /// Committed operations per second of wall time.
    public var opsPerSecond: Double
    /// Latency of one operation from its call to its return (retries and queueing included), in nanoseconds.
    public var p50Nanoseconds: Double
    public var p99Nanoseconds: Double
    /// The counter after every operation returned.
    public var finalCounter: Int64
    /// Reaction rows after every operation returned.
    public var reactionRows: Int
    /// `committed − finalCounter`: increments reported as done that the counter does not hold.
    public var lostUpdates: Int
    /// The end state, judged (see ``Correctness``).
    public var correctness: Correctness
    /// Seed 003's published figure for this strategy, if any (not measured here).
    public var seedPublished: SeedFigure?

    /// How the end state is judged: the counter and the rows must both equal the operations that reported success.
    public enum Correctness: String, Hashable, Sendable, Codable {
        /// Counter = rows = committed.
        case correct
        /// The strategy claims to prevent lost updates and the end state is wrong.
        case fail = "FAIL"
        /// The unprotected baseline, and the end state is wrong: what it is there to show.
        case brokenAsExpected = "broken-as-expected"
        /// The unprotected baseline, and this schedule happened to lose nothing (it proves nothing).
        case unprotectedNoLossThisRun = "unprotected-no-loss-this-run"
    }

    /// Judges an end state.
    public static func judge(claims: Bool, committed: Int, counter: Int64, rows: Int) -> Correctness {
        let right = counter == Int64(committed) && rows == committed
        switch (claims, right) {
        case (true, true): return .correct
        case (true, false): return .fail
        case (false, false): return .brokenAsExpected
        case (false, true): return .unprotectedNoLossThisRun
        }
    }
}

/// The `lost-update` experiment (seed 003's second benchmark): N concurrent "add a reaction to a thread" operations
/// on a fresh store of the backend per strategy, under a fresh ``Keyspace``. Each operation reads the reacting user's account row (as the seed does),
/// inserts its reaction row under its own key and adds one to the thread's counter.
///
/// ```swift
/// let experiment = LostUpdateExperiment(LostUpdateParameters(operations: 100, seed: 7))
/// let result = try await experiment.run(.rowLock, on: EmbeddedLabBackend())
/// print(result.finalCounter, result.reactionRows, result.correctness)   // 100 100 correct
/// ```
public struct LostUpdateExperiment: Sendable {
    public var parameters: LostUpdateParameters
    /// Advanced by one per operation that returned.
    public var progress: LabProgress

    public init(_ parameters: LostUpdateParameters, progress: LabProgress = LabProgress()) {
        self.parameters = parameters
        self.progress = progress
    }

    /// The keys of one run.
    struct Keys: Sendable {
        let counter: Bytes
        let reactionPrefix: Bytes
        let space: Keyspace

        init(_ space: Keyspace) {
            self.space = space
            counter = space.key("thread/1/reactions")
            reactionPrefix = space.key("reaction/1/")
        }

        func reaction(_ i: Int) -> Bytes { space.key("reaction/1/\(i)") }
        func account(_ i: Int) -> Bytes { space.key("account/\(i)") }
    }

    /// Runs every strategy in `strategies` on the embedded engine, one after another, each on its own database.
    public func run(_ strategies: [LostUpdateStrategy] = LostUpdateStrategy.allCases) async throws
        -> [LostUpdateResult]
    {
        try await run(strategies, on: EmbeddedLabBackend())
    }

    /// Runs every strategy in `strategies` on `backend`, one after another, each on a fresh store.
    public func run<Backend: LabBackend>(_ strategies: [LostUpdateStrategy], on backend: Backend) async throws
        -> [LostUpdateResult]
    {
        progress.plan(strategies.count * parameters.operations, "lost-update on \(backend.name)")
        var results: [LostUpdateResult] = []
        for strategy in strategies { results.append(try await run(strategy, on: backend)) }
        return results
    }

    /// Runs `strategy` on a fresh embedded database.
    public func run(_ strategy: LostUpdateStrategy) async throws -> LostUpdateResult {
        try await run(strategy, on: EmbeddedLabBackend())
    }

    /// Runs `strategy` on a fresh store of `backend`: the thread's counter at 0, one account row per operation.
    public func run<Backend: LabBackend>(_ strategy: LostUpdateStrategy, on backend: Backend) async throws
        -> LostUpdateResult
    {
        try await backend.withStore { db in try await run(strategy, store: db, backend: backend.name) }
    }

    func run<Store: KeyValueStore>(_ strategy: LostUpdateStrategy, store db: Store, backend: String) async throws
        -> LostUpdateResult
    {
        progress.label("lost-update \(strategy.rawValue) on \(backend)")
        let n = parameters.operations
        let keys = Keys(Keyspace())
        _ = try await db.put(keys.counter, Bytes(Int64(0)))
        for i in 0..<n { _ = try await db.put(keys.account(i), Bytes("{\"user\":\(i)}")) }

        var rng = SplitMix64(seed: parameters.seed)
        var order = Array(0..<n)
        order.shuffle(using: &rng)
        let retries = Tally()
        let writer =
            strategy == .partitionedWriter
            ? PartitionedWriter(
                store: db, partitions: parameters.partitions, maxBatch: parameters.maxBatch,
                roundTrip: RoundTrip(microseconds: parameters.statementLatencyMicroseconds)) : nil
        let operation = Operation(
            strategy: strategy, db: db, keys: keys, retries: retries, writer: writer, parameters: parameters,
            roundTrip: RoundTrip(microseconds: parameters.statementLatencyMicroseconds))

        let clock = ContinuousClock()
        let start = clock.now
        var latencies = LatencyHistogram()
        var committed = 0
        var gaveUp = 0
        var otherErrors: [String: Int] = [:]
        await withTaskGroup(of: (OperationOutcome, Duration).self) { group in
            for i in order {
                group.addTask {
                    let begin = clock.now
                    let outcome = await operation.perform(i)
                    return (outcome, clock.now - begin)
                }
            }
            for await (outcome, latency) in group {
                latencies.record(latency)
                progress.advance()
                switch outcome {
                case .committed: committed += 1
                case .gaveUp: gaveUp += 1
                case .failed(let code): otherErrors[code, default: 0] += 1
                }
            }
        }
        let wall = (clock.now - start) / .seconds(1)
        await writer?.finish()

        let counter = try await db.get(keys.counter)?.value.int64 ?? -1
        let rows = try await db.transaction(.snapshot, readOnly: true) { tx in
            try await tx.scan(prefix: keys.reactionPrefix).count
        }
        return LostUpdateResult(
            backend: backend, strategy: strategy, claimsToPreventLostUpdates: strategy.preventsLostUpdates,
            operations: n,
            committed: committed, gaveUp: gaveUp, otherErrors: otherErrors, retries: retries.count,
            wallSeconds: wall, opsPerSecond: wall > 0 ? Double(committed) / wall : 0,
            p50Nanoseconds: latencies.p50, p99Nanoseconds: latencies.p99, finalCounter: counter, reactionRows: rows,
            lostUpdates: committed - Int(counter),
            correctness: LostUpdateResult.judge(
                claims: strategy.preventsLostUpdates, committed: committed, counter: counter, rows: rows),
            seedPublished: strategy.seedPublished)
    }
}

/// How one operation ended.
enum OperationOutcome: Sendable {
    case committed
    /// Out of tries or time.
    case gaveUp
    /// Any other error, by code.
    case failed(String)
}

/// One "add a reaction" under one strategy.
struct Operation<Store: KeyValueStore>: Sendable {
    let strategy: LostUpdateStrategy
    let db: Store
    let keys: LostUpdateExperiment.Keys
    let retries: Tally
    let writer: PartitionedWriter<Store>?
    let parameters: LostUpdateParameters
    let roundTrip: RoundTrip

    /// Tries seed 003 allows a compare-and-set (`RetryMatchAndSet`, maxRetry = 5).
    static var seedCompareAndSetTries: Int { 5 }
    /// Retries seed 003 allows a repeatable-read transaction (`maxRetry = 5`, counted down to below zero: six
    /// attempts in all).
    static var seedTransactionRetries: Int { 5 }

    func perform(_ i: Int) async -> OperationOutcome { await perform(i, counter: keys.counter) }

    /// One operation: reaction row `i`, on the counter `counter`.
    func perform(_ i: Int, counter: Bytes) async -> OperationOutcome {
        do {
            switch strategy {
            case .readModifyWrite:
                try await db.transaction(.readCommitted, retry: .none) { tx in try await readModifyWrite(i, counter, tx)
                }
            case .rowLock:
                try await db.transaction(.readCommitted, retry: counted(maxAttempts: 1_000)) { tx in
                    try await roundTrip()
                    let n = try await tx.lock(counter, .forUpdate)?.int64 ?? 0
                    try await roundTrip()
                    _ = try await tx.get(keys.account(i))
                    try await roundTrip()
                    try await tx.insert(keys.reaction(i), "like")
                    try await roundTrip()
                    try await tx.put(counter, Bytes(n + 1))
                }
            case .snapshotRetry:
                let policy = counted(
                    maxAttempts: Self.seedTransactionRetries + 1, baseDelay: .zero, maxDelay: .zero)
                try await db.transaction(.snapshot, retry: policy) { tx in try await readModifyWrite(i, counter, tx) }
            case .snapshotBudget:
                return try await withinBudget(i) {
                    try await db.transaction(.snapshot, retry: .none) { tx in try await readModifyWrite(i, counter, tx)
                    }
                    return true
                }
            case .compareAndSet:
                for attempt in 1...Self.seedCompareAndSetTries {
                    if try await compareAndSet(i, counter) { return .committed }
                    if attempt < Self.seedCompareAndSetTries { retries.add(1) }
                }
                return .gaveUp
            case .compareAndSetBudget:
                return try await withinBudget(i) { try await compareAndSet(i, counter) }
            case .atomicIncrement:
                try await roundTrip()
                _ = try await db.get(keys.account(i))
                try await roundTrip()
                _ = try await db.put(keys.reaction(i), "like", ifAbsent: true)
                try await roundTrip()
                _ = try await db.increment(counter)
            case .serializableRetry:
                try await db.transaction(.serializable, retry: counted(maxAttempts: parameters.serializableMaxAttempts))
                {
                    tx in try await readModifyWrite(i, counter, tx)
                }
            case .partitionedWriter:
                try await roundTrip()
                _ = try await db.get(keys.account(i))
                try await roundTrip()
                try await writer!.submit(counter: counter, reaction: keys.reaction(i))
            }
            return .committed
        } catch let error as IsoKVError where error.isRetryable || error.code == .versionMismatch {
            return .gaveUp
        } catch let error as IsoKVError {
            return .failed(error.code.rawValue)
        } catch {
            return .failed("\(type(of: error))")
        }
    }

    /// Read the counter, read the account, insert the reaction, write counter + 1: what the seed's transactions do.
    private func readModifyWrite(_ i: Int, _ counter: Bytes, _ tx: Store.Transaction) async throws {
        try await roundTrip()
        let n = try await tx.get(counter)?.int64 ?? 0
        try await roundTrip()
        _ = try await tx.get(keys.account(i))
        try await roundTrip()
        try await tx.insert(keys.reaction(i), "like")
        try await roundTrip()
        try await tx.put(counter, Bytes(n + 1))
    }

    /// One try of the seed's compare-and-set: read the counter and its version, insert the reaction, write
    /// counter + 1 if the version is unchanged; if it changed, delete the reaction and return false.
    private func compareAndSet(_ i: Int, _ counter: Bytes) async throws -> Bool {
        try await roundTrip()
        guard let current = try await db.get(counter), let n = current.value.int64 else {
            throw IsoKVError(.invalidInput, "the thread counter is missing or not an integer")
        }
        try await roundTrip()
        _ = try await db.get(keys.account(i))
        try await roundTrip()
        _ = try await db.put(keys.reaction(i), "like", ifAbsent: true)
        do {
            try await roundTrip()
            _ = try await db.put(counter, Bytes(n + 1), ifVersion: current.version)
            return true
        } catch let error as IsoKVError where error.code == .versionMismatch {
            try await roundTrip()
            _ = try await db.delete(keys.reaction(i))
            return false
        }
    }

    /// Runs `attempt` until it succeeds (returns true) or the operation's budget is spent. A failed attempt (false,
    /// or a retryable error) sleeps a full-jitter backoff (100 µs · 2^k, at most 10 ms, drawn from the run's seed)
    /// before the next one.
    private func withinBudget(_ i: Int, _ attempt: () async throws -> Bool) async throws -> OperationOutcome {
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(parameters.budgetMilliseconds)
        var rng = SplitMix64(seed: parameters.seed &+ UInt64(i) &* 0x9e37_79b9_7f4a_7c15)
        var failures = 0
        while true {
            do {
                if try await attempt() { return .committed }
            } catch let error as IsoKVError where error.isRetryable {}
            failures += 1
            guard clock.now < deadline else { return .gaveUp }
            retries.add(1)
            let capMicros = min(10_000, 100 << min(failures - 1, 10))
            try await Task.sleep(for: .microseconds(rng.next(below: capMicros + 1)))
        }
    }

    /// `RetryPolicy` with the retries counted.
    private func counted(
        maxAttempts: Int, baseDelay: Duration = .microseconds(200), maxDelay: Duration = .milliseconds(50)
    ) -> RetryPolicy {
        let retries = self.retries
        return RetryPolicy(maxAttempts: maxAttempts, baseDelay: baseDelay, maxDelay: maxDelay) { _ in retries.add(1) }
    }
}

/// The simulated client–server round trip paid before each statement (``LostUpdateParameters/statementLatencyMicroseconds``):
/// a `Task.sleep`, so the waiting task gives its thread back, as a client waiting on a socket would.
struct RoundTrip: Sendable {
    let microseconds: Int

    func callAsFunction() async throws {
        if microseconds > 0 { try await Task.sleep(for: .microseconds(microseconds)) }
    }
}
