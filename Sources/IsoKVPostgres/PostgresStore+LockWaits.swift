import IsoKVCore
import PostgresNIO

extension PostgresStore {
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
        while !Task.isCancelled {
            if let pid = state.withLock({ $0.openTransactions[transaction.rawValue] }),
               (try? await isWaitingForLock(pid)) == true {
                return
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Whether backend `pid` is waiting for a heavyweight lock (a row, a transaction id, a tuple).
    func isWaitingForLock(_ pid: Int32) async throws -> Bool {
        try await withConnection { c in
            var waiting = false
            for try await row in try await c.query(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = \(pid)", logger: HeldConnection.logger) {
                waiting = try row.decode(Bool?.self) ?? false
            }
            return waiting
        }
    }
}
