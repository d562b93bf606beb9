/// How ``KeyValueStore/transaction(_:readOnly:retry:_:)`` and ``KeyValueStore/update(_:retry:_:)`` retry.
///
/// Attempt `n` (from 1) that fails with a retryable error sleeps a random time in `[0, min(maxDelay,
/// baseDelay · 2^(n-1))]` ("full jitter") before attempt `n + 1`, up to `maxAttempts` attempts in all.
///
/// ```swift
/// try await db.transaction(.snapshot, retry: RetryPolicy(maxAttempts: 50)) { tx in … }
/// try await db.transaction(retry: .none) { tx in … }     // report 40001 to the caller
/// ```
///
/// To see the retries (a benchmark counting aborts by cause, a log line), set ``onRetry``:
///
/// ```swift
/// var policy = RetryPolicy(maxAttempts: 100)
/// policy.onRetry = { event in retries.record(event.error.code) }   // `retries`: something Sendable
/// ```
///
/// Equality and hashing compare the schedule only (``maxAttempts``, ``baseDelay``, ``maxDelay``): closures cannot be
/// compared, and two policies that retry the same way are the same policy whoever watches them.
public struct RetryPolicy: Sendable, Hashable {
    /// Total attempts, the first included (≥ 1).
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// Called once for each failed attempt that will be retried, before the backoff sleep, on the task running the
    /// transaction. Not called for the last failure (the one that reaches the caller) nor for errors that are not
    /// retried. Keep it short and non-blocking: it runs inside the retry loop.
    public var onRetry: (@Sendable (RetryEvent) -> Void)?

    public init(
        maxAttempts: Int = 10, baseDelay: Duration = .microseconds(200), maxDelay: Duration = .milliseconds(50),
        onRetry: (@Sendable (RetryEvent) -> Void)? = nil
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.onRetry = onRetry
    }

    /// 10 attempts, 200 µs base, 50 ms cap.
    public static let `default` = RetryPolicy()
    /// One attempt: retryable errors reach the caller.
    public static let none = RetryPolicy(maxAttempts: 1)

    public static func == (lhs: RetryPolicy, rhs: RetryPolicy) -> Bool {
        lhs.maxAttempts == rhs.maxAttempts && lhs.baseDelay == rhs.baseDelay && lhs.maxDelay == rhs.maxDelay
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(maxAttempts)
        hasher.combine(baseDelay)
        hasher.combine(maxDelay)
    }

    /// Reports the failure of `attempt` to ``onRetry``, then sleeps before attempt `attempt + 1`.
    @usableFromInline
    nonisolated(nonsending) func retrying(after attempt: Int, _ error: IsoKVError) async throws {
        onRetry?(RetryEvent(attempt: attempt, error: error))
        try await backoff(after: attempt)
    }

    /// Sleeps before attempt `attempt + 1`.
    @usableFromInline
    nonisolated(nonsending) func backoff(after attempt: Int) async throws {
        let cap = min(maxDelay, baseDelay * (1 << min(attempt - 1, 20)))
        let capNanos = max(0, cap.components.seconds * 1_000_000_000 + cap.components.attoseconds / 1_000_000_000)
        guard capNanos > 0 else { await Task.yield(); return }
        try await Task.sleep(for: .nanoseconds(Int64.random(in: 0...capNanos)))
    }
}

/// One retry, as reported to ``RetryPolicy/onRetry``: attempt `attempt` (from 1) failed with `error` and attempt
/// `attempt + 1` follows after the backoff.
public struct RetryEvent: Sendable, Hashable {
    /// The attempt that failed, from 1.
    public var attempt: Int
    /// Why it failed: a retryable error (`40001`, `40P01`) for a transaction, `IK412` or `23505` for
    /// ``KeyValueStore/update(_:retry:_:)``.
    public var error: IsoKVError

    public init(attempt: Int, error: IsoKVError) {
        self.attempt = attempt
        self.error = error
    }
}
