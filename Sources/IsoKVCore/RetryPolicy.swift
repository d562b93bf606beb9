/// How ``KeyValueStore/transaction(_:readOnly:retry:_:)`` and ``KeyValueStore/update(_:maxAttempts:_:)`` retry.
///
/// Attempt `n` (from 1) that fails with a retryable error sleeps a random time in `[0, min(maxDelay,
/// baseDelay · 2^(n-1))]` ("full jitter") before attempt `n + 1`, up to `maxAttempts` attempts in all.
///
/// ```swift
/// try await db.transaction(.snapshot, retry: RetryPolicy(maxAttempts: 50)) { tx in … }
/// try await db.transaction(retry: .none) { tx in … }     // report 40001 to the caller
/// ```
public struct RetryPolicy: Sendable, Hashable {
    /// Total attempts, the first included (≥ 1).
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 10, baseDelay: Duration = .microseconds(200), maxDelay: Duration = .milliseconds(50)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// 10 attempts, 200 µs base, 50 ms cap.
    public static let `default` = RetryPolicy()
    /// One attempt: retryable errors reach the caller.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// Sleeps before attempt `attempt + 1`.
    @usableFromInline
    nonisolated(nonsending) func backoff(after attempt: Int) async throws {
        let cap = min(maxDelay, baseDelay * (1 << min(attempt - 1, 20)))
        let capNanos = max(0, cap.components.seconds * 1_000_000_000 + cap.components.attoseconds / 1_000_000_000)
        guard capNanos > 0 else { await Task.yield(); return }
        try await Task.sleep(for: .nanoseconds(Int64.random(in: 0...capNanos)))
    }
}
