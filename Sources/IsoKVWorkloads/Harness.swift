import IsoKVCore

/// How long one measurement runs.
public enum RunLength: Sendable, Hashable {
    /// Until this much wall time has passed (each task stops at its first timed operation past the deadline).
    case duration(Duration)
    /// Exactly this many operations in each task (tests: no clock decides anything).
    case operations(perTask: Int)
}

/// The timed harness: runs an operation in `tasks` concurrent tasks (structured concurrency, one child task each)
/// for a ``RunLength``, and returns throughput, sampled latencies (an HdrHistogram per task, merged) and the
/// transaction counters of every task.
///
/// Sampling: in each task, one operation in ``sampleEvery`` (the `sampleEvery`-th, `2·sampleEvery`-th, …) is timed
/// with two reads of the monotonic clock; the others are not, so that the clock (~50 ns a read here) stays out of
/// the throughput of sub-microsecond operations. The choice is systematic, not random: fine unless the operation's
/// latency has a period dividing `sampleEvery` (no workload here has one: their choices come from the task's
/// random stream). A timed operation includes its retries and their backoff sleeps. `sampleEvery: 1` times every
/// operation. The deadline is checked at each timed operation, so a task overruns it by at most `sampleEvery`
/// operations; the throughput divides by the time actually elapsed, so the overrun is measured, not lost.
///
/// Measuring several rows that must be compared: ``warmUp(_:for:)`` then ``interleave(_:perRow:slices:)``. The
/// method is in `Sources/IsoKVWorkloads/DESIGN.md`.
public struct Harness: Sendable {
    /// Concurrent tasks (≥ 1).
    public var tasks: Int
    /// Time one operation in this many (≥ 1).
    public var sampleEvery: Int
    /// The policy every task's transactions retry with (each task adds its own ``RetryLog`` observer).
    public var retry: RetryPolicy

    /// 100 attempts, full-jitter backoff from 80 µs capped at 2 ms: a benchmark retries much harder and sleeps
    /// much less than an application (``RetryPolicy/default``), so that a hot key costs retries, not idle time.
    public static let benchmarkRetry = RetryPolicy(
        maxAttempts: 100, baseDelay: .microseconds(80),
        maxDelay: .milliseconds(2))

    public init(tasks: Int, sampleEvery: Int = 8, retry: RetryPolicy = Harness.benchmarkRetry) {
        precondition(tasks >= 1 && sampleEvery >= 1)
        self.tasks = tasks
        self.sampleEvery = sampleEvery
        self.retry = retry
    }

    /// The seed of task `task`'s random stream in a run seeded `seed` (run seed 0 gives `task · 7919 + 17`).
    @inlinable
    public static func taskSeed(_ seed: UInt64, task: Int) -> UInt64 {
        seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(truncatingIfNeeded: task) &* 7919 &+ 17
    }

    /// Runs `operation` in ``tasks`` tasks for `length`. An error thrown by an operation ends the run and is rethrown
    /// (retryable transaction failures are not errors here: ``Worker/transaction(_:_:readOnly:_:)`` counts them).
    public func measure(
        _ length: RunLength, seed: UInt64 = 0,
        _ operation: nonisolated(nonsending) @escaping @Sendable (inout Worker) async throws -> Void
    ) async throws -> HarnessResult {
        try await measure(
            length, seed: seed, passing: (), ClosureOperation { _, worker in try await operation(&worker) })
    }

    /// Runs `operation` with `argument` (a workload's context) in ``tasks`` tasks for `length`, as
    /// ``measure(_:seed:_:)`` does. Inlinable: the loop is specialized for the operation's type, so that each
    /// operation is a direct call the optimizer may inline, not the call of a closure value (which allocates an
    /// async frame, through a reabstraction thunk for a generic closure, and hops back to the executor after it).
    @inlinable
    public func measure<Operation: HarnessOperation>(
        _ length: RunLength, seed: UInt64 = 0, passing argument: Operation.Argument, _ operation: Operation
    ) async throws -> HarnessResult {
        let start = monotonicNanoseconds()
        let deadline = Self.deadline(start, length)
        let parts = try await withThrowingTaskGroup(of: (Worker, LatencyHistogram).self) { group in
            for task in 0..<tasks {
                group.addTask { [self] in
                    try await runTask(
                        task, seed: seed, length: length, deadline: deadline, passing: argument, operation)
                }
            }
            var parts: [(Worker, LatencyHistogram)] = []
            for try await part in group { parts.append(part) }
            return parts
        }
        return Self.result(parts, nanoseconds: monotonicNanoseconds() - start)
    }

    /// One task of ``measure(_:seed:passing:_:)``. `nonisolated(nonsending)`, as
    /// ``Worker/transaction(_:_:readOnly:_:)`` is: no hop to the global executor around the loop's calls.
    @inlinable
    nonisolated(nonsending) func runTask<Operation: HarnessOperation>(
        _ task: Int, seed: UInt64, length: RunLength, deadline: UInt64, passing argument: Operation.Argument,
        _ operation: Operation
    ) async throws -> (Worker, LatencyHistogram) {
        var worker = Worker(task: task, seed: Self.taskSeed(seed, task: task), retry: retry)
        var latency = LatencyHistogram()
        let limit: Int
        switch length {
        case .duration: limit = .max
        case .operations(let n): limit = n
        }
        var untilTimed = sampleEvery  // operations left until (and including) the next timed one
        while worker.completed < limit {
            untilTimed -= 1
            if untilTimed > 0 {
                try await operation.run(argument, &worker)
                worker.completed += 1
                continue
            }
            untilTimed = sampleEvery
            let t0 = monotonicNanoseconds()
            try await operation.run(argument, &worker)
            let t1 = monotonicNanoseconds()
            worker.completed += 1
            latency.record(nanoseconds: t1 &- t0)
            if t1 >= deadline { break }
        }
        return (worker, latency)
    }

    /// Runs a synchronous `operation` in ``tasks`` tasks for `length`, in a tight loop with no suspension point per
    /// operation: for in-memory baselines (a raw map's load) whose cost is tens of nanoseconds, where an async call
    /// per operation would be measured instead. Latency is the mean of each group of `groupSize` consecutive calls
    /// (every group is timed; ``sampleEvery`` does not apply). The deadline is checked after each group.
    ///
    /// Each task occupies a cooperative thread for the whole run, computing (it never waits): use at most as many
    /// tasks as cores, as for any CPU-bound benchmark.
    @inlinable
    public func measureSynchronous(
        _ length: RunLength, seed: UInt64 = 0, groupSize: Int = 8,
        _ operation: @escaping @Sendable (inout Worker) -> Void
    ) async -> HarnessResult {
        precondition(groupSize >= 1)
        let start = monotonicNanoseconds()
        let deadline = Self.deadline(start, length)
        let parts = await withTaskGroup(of: (Worker, LatencyHistogram).self) { group in
            for task in 0..<tasks {
                group.addTask { [retry] in
                    var worker = Worker(task: task, seed: Self.taskSeed(seed, task: task), retry: retry)
                    var latency = LatencyHistogram()
                    let limit: Int
                    switch length {
                    case .duration: limit = .max
                    case .operations(let n): limit = n
                    }
                    while worker.completed < limit {
                        let n = Swift.min(groupSize, limit - worker.completed)
                        let t0 = monotonicNanoseconds()
                        for _ in 0..<n { operation(&worker) }
                        let t1 = monotonicNanoseconds()
                        worker.completed += n
                        latency.record(nanoseconds: (t1 &- t0) / UInt64(n))
                        if t1 >= deadline { break }
                    }
                    return (worker, latency)
                }
            }
            var parts: [(Worker, LatencyHistogram)] = []
            for await part in group { parts.append(part) }
            return parts
        }
        return Self.result(parts, nanoseconds: monotonicNanoseconds() - start)
    }

    @usableFromInline
    static func deadline(_ start: UInt64, _ length: RunLength) -> UInt64 {
        guard case .duration(let d) = length else { return .max }
        let (seconds, attoseconds) = d.components
        return start &+ UInt64(Swift.max(0, seconds)) &* 1_000_000_000
            &+ UInt64(Swift.max(0, attoseconds) / 1_000_000_000)
    }

    @usableFromInline
    static func result(_ parts: [(Worker, LatencyHistogram)], nanoseconds: UInt64) -> HarnessResult {
        var result = HarnessResult()
        result.seconds = Double(nanoseconds) / 1e9
        for (worker, latency) in parts {
            result.operations += worker.completed
            result.latency.merge(latency)
            result.counters.merge(worker.allCounters)
        }
        return result
    }
}

/// One step of a harness run, as a type: what ``Harness/measure(_:seed:passing:_:)`` calls once per operation,
/// with the run's argument (a workload's context) and the task's worker. A value of a concrete type lets the harness's
/// loop be specialized for it, so that the step costs what its body costs: the catalogue's workloads are such types
/// (``Workload/init(name:description:_:)``).
///
/// ```swift
/// struct OneGet: HarnessOperation {
///     func run(_ context: WorkloadContext<Database>, _ worker: inout Worker) async throws {
///         _ = try await context.store.get(context.data.randomKey(using: &worker.rng))
///     }
/// }
/// let result = try await Harness(tasks: 2).measure(.duration(.seconds(1)), passing: context, OneGet())
/// ```
public protocol HarnessOperation<Argument>: Sendable {
    /// What every step is given besides the worker (the same value in every task).
    associatedtype Argument: Sendable
    /// Runs one step. `nonisolated(nonsending)`: it runs on the harness task's executor, with no hop around it.
    nonisolated(nonsending) func run(_ argument: Argument, _ worker: inout Worker) async throws
}

/// A step given as a closure (``Harness/measure(_:seed:_:)``, ``Workload/init(name:description:operation:)``): each
/// step is one call of the closure value.
@usableFromInline
struct ClosureOperation<Argument: Sendable>: HarnessOperation {
    @usableFromInline let body: nonisolated(nonsending) @Sendable (Argument, inout Worker) async throws -> Void

    @inlinable
    init(_ body: nonisolated(nonsending) @escaping @Sendable (Argument, inout Worker) async throws -> Void) {
        self.body = body
    }

    @inlinable
    nonisolated(nonsending) func run(_ argument: Argument, _ worker: inout Worker) async throws {
        try await body(argument, &worker)
    }
}
