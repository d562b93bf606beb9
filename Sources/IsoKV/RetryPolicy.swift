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

extension KeyValueStore {
    /// Runs `body` in a transaction: commits when it returns, rolls back when it throws, and retries the whole
    /// transaction (a fresh one each time) when the failure ``IsoKVError/isRetryable`` (`40001`, `40P01`), per
    /// `retry`. Committing or rolling back inside `body` is a programmer error (the final commit then throws `25P01`).
    ///
    /// ```swift
    /// try await db.transaction(.snapshot) { tx in
    ///     let a = try await tx.get("a")?.int64 ?? 0
    ///     try await tx.put("a", Bytes(a - 10))
    ///     try await tx.put("b", Bytes((try await tx.get("b")?.int64 ?? 0) + 10))
    /// }
    /// ```
    /// `body` must be safe to run more than once (no side effects outside the transaction).
    @inlinable
    nonisolated(nonsending) public func transaction<R>(
        _ isolation: IsolationLevel = .default,
        readOnly: Bool = false,
        retry: RetryPolicy = .default,
        _ body: (Transaction) async throws -> R
    ) async throws -> R {
        var attempt = 1
        while true {
            let tx = try await begin(isolation, readOnly: readOnly)
            do {
                let result = try await body(tx)
                try await tx.commit()
                return result
            } catch {
                try? await tx.rollback()
                guard let e = error as? IsoKVError, e.isRetryable, attempt < retry.maxAttempts else { throw error }
                try await retry.backoff(after: attempt)
                attempt += 1
            }
        }
    }

    /// Replaces the value of `key` with `transform(old)` (nil deletes, or leaves absent) by optimistic
    /// compare-and-set on the version, retrying with jittered backoff when another writer got in between, at most
    /// `maxAttempts` times (then `IK412`). Returns the new value. `transform` may run several times.
    ///
    /// ```swift
    /// try await db.update("profile") { old in Bytes((old?.string ?? "") + "!") }
    /// ```
    @discardableResult
    nonisolated(nonsending) public func update(_ key: Bytes, maxAttempts: Int = 100, _ transform: (Bytes?) throws -> Bytes?) async throws
        -> Bytes?
    {
        let policy = RetryPolicy(maxAttempts: maxAttempts)
        var attempt = 1
        while true {
            let current = try await get(key)
            let new = try transform(current?.value)
            do {
                switch (current, new) {
                case (nil, nil): return nil
                case (nil, let value?): try await put(key, value, ifAbsent: true)
                case (let cur?, nil): try await delete(key, ifVersion: cur.version)
                case (let cur?, let value?): try await put(key, value, ifVersion: cur.version)
                }
                return new
            } catch let e as IsoKVError where e.code == .versionMismatch || e.code == .uniqueViolation {
                guard attempt < policy.maxAttempts else {
                    throw IsoKVError(.versionMismatch, "update gave up after \(attempt) attempts", key: key)
                }
                try await policy.backoff(after: attempt)
                attempt += 1
            }
        }
    }
}
