import IsoKVCore
import PostgresNIO

// Single-key operations: each is one SQL statement in its own implicit transaction (no client-side
// read-then-write), on a connection leased for that statement. DESIGN.md lists the SQL.
extension PostgresStore {
    /// The committed value of `key` and its version, or nil. Never waits for locks. A read on a pooled connection
    /// that turns out to be dead (PostgreSQL restarted) is retried once on a fresh one; it is idempotent.
    ///
    /// ```swift
    /// if let v = try await store.get("config") { print(v.value, v.version) }
    /// ```
    nonisolated(nonsending) public func get(_ key: Bytes) async throws -> VersionedValue? {
        try configuration.limits.check(key: key)
        var attempt = 1
        while true {
            do {
                let rows = try await withConnection(key: key) { try await $0.rows(GetStatement(key: key)) }
                return rows.first.map { VersionedValue(value: Bytes($0.0), version: UInt64($0.1)) }
            } catch let e as IsoKVError where e.code == .connectionFailure && attempt == 1 {
                attempt += 1
            }
        }
    }

    /// Stores `value` (one upsert); returns the new version.
    ///
    /// ```swift
    /// let version = try await store.put("greeting", "hello")
    /// ```
    @discardableResult
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes) async throws -> UInt64 {
        try configuration.limits.check(key: key)
        try configuration.limits.check(value: value, key: key)
        let rows = try await withConnection(key: key) { try await $0.rows(PutStatement(key: key, value: value)) }
        return UInt64(rows[0])
    }

    /// `UPDATE … SET v = $2, version = nextval(…) WHERE k = $1 AND version = $3`; `IK412` if no row matched.
    ///
    /// ```swift
    /// let v = try await store.get("doc")!
    /// try await store.put("doc", "edited", ifVersion: v.version)   // IK412 if someone else wrote it since
    /// ```
    @discardableResult
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes, ifVersion version: UInt64) async throws
        -> UInt64
    {
        try configuration.limits.check(key: key)
        try configuration.limits.check(value: value, key: key)
        guard let v = postgresVersion(version) else { throw Self.mismatch(key, version) }
        let rows = try await withConnection(key: key) {
            try await $0.rows(PutIfVersionStatement(key: key, value: value, version: v))
        }
        guard let new = rows.first else { throw Self.mismatch(key, version) }
        return UInt64(new)
    }

    /// With `ifAbsent`, `INSERT … ON CONFLICT DO NOTHING` (`23505` if the key exists); otherwise ``put(_:_:)``.
    ///
    /// ```swift
    /// try await store.put("user/ada", profile, ifAbsent: true)     // 23505 if someone took the name
    /// ```
    @discardableResult
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes, ifAbsent: Bool) async throws -> UInt64 {
        guard ifAbsent else { return try await put(key, value) }
        try configuration.limits.check(key: key)
        try configuration.limits.check(value: value, key: key)
        let rows = try await withConnection(key: key) { try await $0.rows(InsertStatement(key: key, value: value)) }
        guard let new = rows.first else { throw IsoKVError(.uniqueViolation, "key exists", key: key) }
        return UInt64(new)
    }

    /// Deletes `key` (one `DELETE`); returns whether it was present.
    ///
    /// ```swift
    /// if try await store.delete("session/42") { print("logged out") }
    /// ```
    @discardableResult
    nonisolated(nonsending) public func delete(_ key: Bytes) async throws -> Bool {
        try configuration.limits.check(key: key)
        return try await !withConnection(key: key) { try await $0.rows(DeleteStatement(key: key)) }.isEmpty
    }

    /// `DELETE … WHERE k = $1 AND version = $2`; `IK412` if no row matched.
    ///
    /// ```swift
    /// let v = try await store.get("lease")!
    /// try await store.delete("lease", ifVersion: v.version)   // IK412 if it was renewed meanwhile
    /// ```
    nonisolated(nonsending) public func delete(_ key: Bytes, ifVersion version: UInt64) async throws {
        try configuration.limits.check(key: key)
        guard let v = postgresVersion(version) else { throw Self.mismatch(key, version) }
        let rows = try await withConnection(key: key) {
            try await $0.rows(DeleteIfVersionStatement(key: key, version: v))
        }
        if rows.isEmpty { throw Self.mismatch(key, version) }
    }

    /// One upsert that adds `delta` to the decimal integer at `key` (absent counts as 0): `22023` if the stored
    /// value is not a decimal `Int64`, `22003` on overflow (both from PostgreSQL, the row untouched).
    ///
    /// ```swift
    /// let visits = try await store.increment("visits", by: 1)
    /// ```
    @discardableResult
    nonisolated(nonsending) public func increment(_ key: Bytes, by delta: Int64) async throws -> Int64 {
        try configuration.limits.check(key: key)
        let rows = try await withConnection(key: key) { try await $0.rows(IncrementStatement(key: key, delta: delta)) }
        guard let n = Bytes(rows[0]).int64 else {
            throw IsoKVError(.invalidInput, "increment stored a value that is not a decimal integer", key: key)
        }
        return n
    }

    static func mismatch(_ key: Bytes, _ version: UInt64) -> IsoKVError {
        IsoKVError(.versionMismatch, "expected version \(version); the key is absent or has another version", key: key)
    }
}
