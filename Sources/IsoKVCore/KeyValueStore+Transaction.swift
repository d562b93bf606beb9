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
    /// `body` must be safe to run more than once (no side effects outside the transaction). Each retry is reported
    /// to `retry.onRetry` (``RetryPolicy/onRetry``) before its backoff.
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
                try await retry.retrying(after: attempt, e)
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
    nonisolated(nonsending) public func update(
        _ key: Bytes, maxAttempts: Int = 100, _ transform: (Bytes?) throws -> Bytes?
    ) async throws
        -> Bytes?
    {
        try await update(key, retry: RetryPolicy(maxAttempts: maxAttempts), transform)
    }

    /// ``update(_:maxAttempts:_:)`` with a whole ``RetryPolicy``: its schedule, and its ``RetryPolicy/onRetry``
    /// observer, called for each lost compare-and-set that is retried (with the `IK412` or `23505` it got).
    /// After `retry.maxAttempts` attempts it throws `IK412`.
    @discardableResult
    nonisolated(nonsending) public func update(
        _ key: Bytes, retry policy: RetryPolicy,
        _ transform: (Bytes?) throws -> Bytes?
    ) async throws -> Bytes? {
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
                try await policy.retrying(after: attempt, e)
                attempt += 1
            }
        }
    }
}
