import IsoKVCore
import PostgresNIO

extension PostgresTransaction {
    /// The rows of `range` in key order (descending when `reverse`), at most `limit`, as one bound query:
    ///
    /// ```sql
    /// SELECT k, v FROM isokv_kv WHERE k >= $1 AND k < $2 ORDER BY k [DESC] LIMIT $3
    ///     [FOR UPDATE | FOR SHARE] [NOWAIT | SKIP LOCKED]
    /// ```
    ///
    /// `bytea` compares as `memcmp`, shorter prefix first — the order of ``Bytes``. The statement sees one snapshot
    /// (the transaction's at `.snapshot`/`.serializable`, a fresh one at the weaker levels). With a lock, PostgreSQL
    /// locks each row before the limit counts it, so `limit: 1, lock: .forUpdate, wait: .skipLocked` claims the first
    /// free row (a queue consumer); at read committed a row changed while waiting is re-checked against the range.
    nonisolated(nonsending) public func scan(
        _ range: KeyRange, limit: Int?, reverse: Bool, lock: RowLockMode?,
        wait: LockWait
    ) async throws -> [KeyValue] {
        if lock != nil { try checkWritable() } else { try checkActive() }
        let max = try store.configuration.limits.scanRows(limit)
        if lock == nil && wait == .skipLocked {
            throw IsoKVError(.invalidInput, "wait: .skipLocked needs a lock mode")
        }
        if max == 0 { return [] }
        let query = Self.scanQuery(range, limit: max, reverse: reverse, lock: lock, wait: wait)
        return try await run { c in
            var out: [KeyValue] = []
            for try await row in try await c.query(query, logger: HeldConnection.logger) {
                let (k, v) = try row.decode((ByteBuffer, ByteBuffer).self)
                out.append(KeyValue(key: Bytes(k), value: Bytes(v)))
            }
            return out
        }
    }

    static func scanQuery(
        _ range: KeyRange, limit: Int, reverse: Bool, lock: RowLockMode?,
        wait: LockWait
    ) -> PostgresQuery {
        var binds = PostgresBindings(capacity: 3)
        var conditions: [String] = []
        if let lower = range.lower {
            binds.append(lower.buffer)
            conditions.append("k >= $\(binds.count)")
        }
        if let upper = range.upper {
            binds.append(upper.buffer)
            conditions.append("k < $\(binds.count)")
        }
        binds.append(Int64(limit))
        var sql = "SELECT k, v FROM isokv_kv"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += reverse ? " ORDER BY k DESC" : " ORDER BY k"
        sql += " LIMIT $\(binds.count)"
        switch lock {
        case .forUpdate?: sql += " FOR UPDATE"
        case .forShare?: sql += " FOR SHARE"
        case nil: break
        }
        if lock != nil {
            switch wait {
            case .block: break
            case .noWait: sql += " NOWAIT"
            case .skipLocked: sql += " SKIP LOCKED"
            }
        }
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }
}
