import IsoKVConformance
import IsoKVCore
import IsoKVSync
import IsoKVWorkloads

/// The parameters of one `isolation` run.
public struct IsolationParameters: Hashable, Sendable, Codable {
    /// Concurrent clients, each running its share of the operations one after another.
    public var clients: Int
    /// Operations per workload and level, all clients together.
    public var operations: Int
    /// Account records the single-object workload chooses from (uniformly, from the seed).
    public var accounts: Int
    /// Threads the multi-object workload adds comments to.
    public var threads: Int
    /// Levels to run, in order.
    public var levels: [IsolationLevel]
    /// Attempts of one operation (retried on `40001`/`40P01` with jittered backoff) before it gives up.
    public var maxAttempts: Int
    /// A simulated client–server round trip before each statement (a `Task.sleep`), in microseconds.
    public var statementLatencyMicroseconds: Int
    public var seed: UInt64

    public init(
        clients: Int = 16, operations: Int = 2_000, accounts: Int = 16, threads: Int = 4,
        levels: [IsolationLevel] = IsolationLevel.allCases, maxAttempts: Int = 100,
        statementLatencyMicroseconds: Int = 0, seed: UInt64 = 1
    ) {
        self.clients = clients
        self.operations = operations
        self.accounts = accounts
        self.threads = threads
        self.levels = levels
        self.maxAttempts = maxAttempts
        self.statementLatencyMicroseconds = statementLatencyMicroseconds
        self.seed = seed
    }

    /// What `--quick` runs.
    public static func quick(seed: UInt64 = 1) -> IsolationParameters {
        IsolationParameters(clients: 4, operations: 200, accounts: 4, threads: 2, seed: seed)
    }
}

/// Seed 003's two workloads of its isolation-level benchmark.
public enum IsolationWorkload: String, Hashable, Sendable, Codable, CaseIterable {
    /// Read an account record (JSON: username, email, version), change username and email, write it back with
    /// version + 1.
    case accountReadModifyWrite = "account-rmw"
    /// Read the user's account and the thread's comment counter, insert a comment row, write counter + 1.
    case threadComment = "thread-comment"

    public var summary: String {
        switch self {
        case .accountReadModifyWrite: return "single object: read an account (JSON), new username/email, version+1"
        case .threadComment: return "multi-object: insert a comment row, counter+1 on its thread"
        }
    }

    /// The invariant checked after the run.
    public var invariant: String {
        switch self {
        case .accountReadModifyWrite: return "sum of account versions − initial = committed operations"
        case .threadComment: return "per thread: comment rows = counter; all rows = committed operations"
        }
    }
}

/// One workload at one level on one backend.
public struct IsolationResult: Hashable, Sendable, Codable {
    public var backend: String
    public var workload: IsolationWorkload
    public var level: IsolationLevel
    public var clients: Int
    public var operations: Int
    public var committed: Int
    /// Operations that ran out of attempts.
    public var gaveUp: Int
    /// Operations that failed with any other error, by code.
    public var otherErrors: [String: Int]
    /// Attempts that failed with `40001`/`40P01` (each retried or, the last, given up), by code.
    public var aborts: [String: Int]
    /// Aborted attempts ÷ all attempts.
    public var abortRate: Double
    public var wallSeconds: Double
    public var opsPerSecond: Double
    /// One operation from call to return, retries included, in nanoseconds.
    public var p50Nanoseconds: Double
    public var p99Nanoseconds: Double
    /// What the invariant compares: expected (committed) and found (the versions' or counters' sum).
    public var expected: Int64
    public var found: Int64
    /// Comment rows (thread-comment only; for account-rmw the same as `found`).
    public var rows: Int
    public var invariantHeld: Bool
    /// Whether the level claims to keep the invariant (no lost update): snapshot and serializable.
    public var levelPreventsLostUpdates: Bool
    /// The end state judged as the lost-update experiment judges it.
    public var correctness: LostUpdateResult.Correctness
}

/// The `isolation` experiment (seed 003's first benchmark): the single-object read-modify-write of an account record
/// and the multi-object "add a comment, bump the thread's counter" at each isolation level, on a fresh store per
/// workload and level: throughput, latency, abort rate, and whether the invariant held.
///
/// ```swift
/// let results = try await IsolationExperiment(.quick()).run(on: EmbeddedLabBackend())
/// for r in results { print(r.workload, r.level, r.opsPerSecond, r.abortRate, r.invariantHeld) }
/// ```
public struct IsolationExperiment: Sendable {
    public var parameters: IsolationParameters
    public var progress: LabProgress

    public init(_ parameters: IsolationParameters, progress: LabProgress = LabProgress()) {
        self.parameters = parameters
        self.progress = progress
    }

    /// Every workload at every level of the parameters on `backend`.
    public func run<Backend: LabBackend>(
        _ workloads: [IsolationWorkload] = IsolationWorkload.allCases, on backend: Backend
    ) async throws -> [IsolationResult] {
        progress.plan(workloads.count * parameters.levels.count * parameters.operations, "isolation on \(backend.name)")
        var results: [IsolationResult] = []
        for workload in workloads {
            for level in parameters.levels {
                results.append(try await run(workload, at: level, on: backend))
            }
        }
        return results
    }

    /// One workload at one level on a fresh store.
    public func run<Backend: LabBackend>(_ workload: IsolationWorkload, at level: IsolationLevel, on backend: Backend)
        async throws -> IsolationResult
    {
        progress.label("isolation \(workload.rawValue) \(level.rawValue) on \(backend.name)")
        return try await backend.withStore { store in
            try await run(workload, at: level, store: store, backend: backend.name)
        }
    }

    struct Account: Codable {
        var username: String
        var email: String
        var version: Int64
    }

    func run<Store: KeyValueStore>(
        _ workload: IsolationWorkload, at level: IsolationLevel, store: Store, backend: String
    ) async throws -> IsolationResult {
        let p = parameters
        let space = Keyspace()
        func account(_ i: Int) -> Bytes { space.key("account/\(i)") }
        func counter(_ t: Int) -> Bytes { space.key("thread/\(t)/comments") }
        func commentPrefix(_ t: Int) -> Bytes { space.key("comment/\(t)/") }
        for i in 0..<p.accounts {
            _ = try await store.put(
                account(i), try Bytes(json: Account(username: "user\(i)", email: "user\(i)@example.org", version: 1)))
        }
        for t in 0..<p.threads { _ = try await store.put(counter(t), Bytes(Int64(0))) }

        let roundTrip = RoundTrip(microseconds: p.statementLatencyMicroseconds)
        let aborts = CodeTally()
        let attempts = Tally()
        let clock = ContinuousClock()
        let start = clock.now
        var latencies = LatencyHistogram()
        var committed = 0
        var gaveUp = 0
        var otherErrors: [String: Int] = [:]
        let perClient = (0..<p.clients).map { c in p.operations / p.clients + (c < p.operations % p.clients ? 1 : 0) }
        try await withThrowingTaskGroup(of: (LatencyHistogram, Int, Int, [String: Int]).self) { group in
            for c in 0..<p.clients {
                group.addTask {
                    var rng = SplitMix64(seed: p.seed &+ UInt64(c) &* 0x9e37_79b9_7f4a_7c15)
                    var latencies = LatencyHistogram()
                    var committed = 0
                    var gaveUp = 0
                    var other: [String: Int] = [:]
                    let retry = RetryPolicy(maxAttempts: p.maxAttempts) { event in
                        aborts.add(event.error.code.rawValue)
                    }
                    for k in 0..<perClient[c] {
                        let user = rng.next(below: p.accounts)
                        let thread = rng.next(below: p.threads)
                        let begin = clock.now
                        do {
                            try await store.transaction(level, retry: retry) { tx in
                                attempts.add(1)
                                switch workload {
                                case .accountReadModifyWrite:
                                    try await roundTrip()
                                    guard var a = try await tx.get(account(user), as: Account.self) else {
                                        throw IsoKVError(.noData, "account \(user) is missing")
                                    }
                                    a.username = "user\(user)-\(c)-\(k)"
                                    a.email = "user\(user)-\(c)-\(k)@example.org"
                                    a.version += 1
                                    try await roundTrip()
                                    try await tx.put(account(user), json: a)
                                case .threadComment:
                                    try await roundTrip()
                                    _ = try await tx.get(account(user))
                                    try await roundTrip()
                                    let n = try await tx.get(counter(thread))?.int64 ?? 0
                                    try await roundTrip()
                                    try await tx.insert(
                                        space.key("comment/\(thread)/\(c)-\(k)"),
                                        Bytes("{\"user\":\(user),\"text\":\"comment \(k) of client \(c)\"}"))
                                    try await roundTrip()
                                    try await tx.put(counter(thread), Bytes(n + 1))
                                }
                            }
                            committed += 1
                        } catch let error as IsoKVError where error.isRetryable {
                            aborts.add(error.code.rawValue)
                            gaveUp += 1
                        } catch let error as IsoKVError {
                            other[error.code.rawValue, default: 0] += 1
                        }
                        latencies.record(clock.now - begin)
                        progress.advance()
                    }
                    return (latencies, committed, gaveUp, other)
                }
            }
            for try await (l, c, g, o) in group {
                latencies.merge(l)
                committed += c
                gaveUp += g
                otherErrors.merge(o, uniquingKeysWith: +)
            }
        }
        let wall = (clock.now - start) / .seconds(1)

        var found: Int64 = 0
        var rows = 0
        var held = true
        switch workload {
        case .accountReadModifyWrite:
            for i in 0..<p.accounts {
                guard let a = try await store.get(account(i))?.value.decode(Account.self) else { continue }
                found += a.version - 1
            }
            rows = Int(found)
            held = found == Int64(committed)
        case .threadComment:
            try await store.transaction(.snapshot, readOnly: true) { tx in
                for t in 0..<p.threads {
                    let n = try await tx.get(counter(t))?.int64 ?? -1
                    let r = try await tx.scan(prefix: commentPrefix(t)).count
                    found += n
                    rows += r
                    if n != Int64(r) { held = false }
                }
            }
            held = held && rows == committed
        }
        let claims = level.hasTransactionSnapshot
        let aborted = aborts.total
        let allAttempts = max(attempts.count, 1)
        return IsolationResult(
            backend: backend, workload: workload, level: level, clients: p.clients, operations: p.operations,
            committed: committed, gaveUp: gaveUp, otherErrors: otherErrors, aborts: aborts.counts,
            abortRate: Double(aborted) / Double(allAttempts), wallSeconds: wall,
            opsPerSecond: wall > 0 ? Double(committed) / wall : 0, p50Nanoseconds: latencies.p50,
            p99Nanoseconds: latencies.p99, expected: Int64(committed), found: found, rows: rows, invariantHeld: held,
            levelPreventsLostUpdates: claims,
            correctness: claims
                ? (held ? .correct : .fail) : (held ? .unprotectedNoLossThisRun : .brokenAsExpected))
    }
}

/// Counts by error code, safe from any task.
final class CodeTally: Sendable {
    private let value = Locked<[String: Int]>([:])
    func add(_ code: String) { value.withLock { $0[code, default: 0] += 1 } }
    var counts: [String: Int] { value.withLock { $0 } }
    var total: Int { value.withLock { $0.values.reduce(0, +) } }
}
