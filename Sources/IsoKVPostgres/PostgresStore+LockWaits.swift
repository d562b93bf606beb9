import IsoKVCore
import PostgresNIO

extension PostgresStore {
    /// Returns once transaction `transaction` — `.serializable`, read-only, deferrable — is suspended waiting for a
    /// safe snapshot (`wait_event = 'SafeSnapshot'`), polling every 2 ms; returns when the calling task is cancelled.
    ///
    /// ```swift
    /// let report = try await store.begin(.serializable, readOnly: true, deferrable: true)
    /// let id = report.id
    /// let reading = Task { try await report.scan(prefix: "acct/") }   // waits while writers could make it unsafe
    /// await store.waitUntilDeferred(id)
    /// ```
    nonisolated(nonsending) public func waitUntilDeferred(_ transaction: TransactionID) async {
        await poll(transaction, "wait_event = 'SafeSnapshot'")
    }

    /// Returns once transaction `transaction` is suspended waiting for a lock in PostgreSQL (its backend shows
    /// `wait_event_type = 'Lock'` in `pg_stat_activity`), polling every 2 ms. Lets tests and tools order "T2 waits for
    /// T1's lock" before "T1 commits" without sleeping and hoping. PostgreSQL does not say which key a row-lock wait
    /// is for, so `key` is not checked: any lock wait of the transaction counts. Returns when the calling task is
    /// cancelled; does not return while the transaction never waits.
    ///
    /// ```swift
    /// let t2 = Task { try await store.transaction(.readCommitted) { try await $0.put("x", "2") } }
    /// await store.waitUntilWaiting(t2ID, on: "x")     // T2 is now queued behind T1's lock on x
    /// ```
    nonisolated(nonsending) public func waitUntilWaiting(_ transaction: TransactionID, on key: Bytes) async {
        await poll(transaction, "wait_event_type = 'Lock'")
    }

    /// Polls `pg_stat_activity` for the backend of `transaction` until `condition` holds or the task is cancelled.
    private func poll(_ transaction: TransactionID, _ condition: String) async {
        let query = PostgresQuery(
            unsafeSQL: "SELECT coalesce(\(condition), false) FROM pg_stat_activity WHERE pid = $1")
        while !Task.isCancelled {
            if let pid = state.withLock({ $0.openTransactions[transaction.rawValue] }) {
                var q = query
                q.binds.append(pid)
                let holds = try? await withConnection { c in
                    var holds = false
                    for try await row in try await c.query(q, logger: HeldConnection.logger) {
                        holds = try row.decode(Bool.self)
                    }
                    return holds
                }
                if holds == true { return }
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }
}

/// The lock-wait hook of IsoKVCore, so that backend-independent code (the conformance replays) can order a step
/// after another transaction's lock wait on PostgreSQL too.
extension PostgresStore: LockWaitObservable {}
