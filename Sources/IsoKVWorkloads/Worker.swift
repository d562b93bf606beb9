import IsoKVCore

/// The state of one task of a run, handed `inout` to each operation: its random stream, how many operations it has
/// finished, and its transaction counters. Not shared: each task owns its worker.
public struct Worker: Sendable {
    /// This task's number in the run, `0..<tasks`.
    public let task: Int
    /// This task's random stream (seeded from the run's seed and `task`).
    public var rng: SplitMix64
    /// Operations this task has finished in this run (the harness increments it after each one).
    public var completed = 0
    /// Commits, give-ups and the aborts of the last attempts; the retried attempts are in ``retryLog``.
    public var counters = OperationCounters()
    /// The policy ``transaction(_:_:readOnly:_:)`` runs with: the harness's, observed by ``retryLog``.
    public let retry: RetryPolicy
    /// Counts this task's retries (the observer of ``retry``).
    public let retryLog: RetryLog

    public init(task: Int, seed: UInt64, retry: RetryPolicy) {
        self.task = task
        rng = SplitMix64(seed: seed)
        let log = RetryLog()
        retryLog = log
        self.retry = log.observing(retry)
    }

    /// Runs `body` as one transaction of `store` at `isolation` through the store's own
    /// ``KeyValueStore/transaction(_:readOnly:retry:_:)`` with ``retry``: retryable failures are retried there and
    /// counted by the observer. Counts the commit, or — when the last attempt fails with a retryable error — one
    /// more abort and one give-up, and returns normally (a benchmark goes on). Other errors are thrown.
    /// `nonisolated(nonsending)`, with its body: it runs on the caller's executor, where a plain `async` method
    /// hopped to the global executor and back around every operation (3–4% of a one-read workload's throughput).
    @inlinable
    nonisolated(nonsending) public mutating func transaction<Store: KeyValueStore>(
        _ store: Store, _ isolation: IsolationLevel, readOnly: Bool = false,
        _ body: nonisolated(nonsending) (Store.Transaction) async throws -> Void
    ) async throws {
        do {
            try await store.transaction(isolation, readOnly: readOnly, retry: retry, body)
            counters.committed += 1
        } catch let error as IsoKVError where error.isRetryable {
            counters.aborts[error.code.rawValue, default: 0] += 1
            counters.gaveUp += 1
        }
    }

    /// Everything counted so far: ``counters`` merged with the retries ``retryLog`` saw.
    public var allCounters: OperationCounters {
        var all = counters
        all.merge(retryLog.counters)
        return all
    }
}
