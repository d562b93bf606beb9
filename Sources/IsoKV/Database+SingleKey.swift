import IsoKVCore
extension Database {
    /// The newest committed value of `key` and its version, or nil. No transaction, no lock: one directory
    /// lookup and a walk of the key's committed versions (the key's own lock only in rare cases, such as a walk
    /// that raced with garbage collection).
    ///
    /// ```swift
    /// if let v = try await db.get("config") { print(v.value, v.version) }
    /// ```
    ///
    /// Inlinable around a synchronous function (`getNow`): a caller specialized for the engine reads without
    /// an async call.
    @inlinable
    nonisolated(nonsending) public func get(_ key: Bytes) async throws -> VersionedValue? {
        try getNow(key)
    }

    /// ``get(_:)``, synchronously (it never waits).
    @usableFromInline
    func getNow(_ key: Bytes) throws -> VersionedValue? {
        try limits.check(key: key)
        if let found = readCommitted(key, snapshot: nil) {
            return found.value.map { VersionedValue(value: $0, version: found.version) }
        }
        while true {
            guard let chain = directory.load(key) else { return nil }
            let result: VersionedValue?? = chain.state.withLock { s in
                if s.retired { return nil }
                guard let v = s.visible(at: oracle.latest()), let value = v.value else { return .some(nil) }
                return .some(VersionedValue(value: value, version: v.commitTS))
            }
            if let result { return result }
            forget(retired: chain)
        }
    }

    @discardableResult
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes) async throws -> UInt64 {
        try await writeOne(key, value) { _ in .some(value) }
    }

    /// ```swift
    /// let v = try await db.get("doc")!
    /// try await db.put("doc", "edited", ifVersion: v.version)   // IK412 if someone else wrote it since
    /// ```
    @discardableResult
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes, ifVersion version: UInt64) async throws
        -> UInt64
    {
        try await writeOne(key, value) { current in
            guard let current, current.value != nil, current.commitTS == version else {
                throw IsoKVError(
                    .versionMismatch,
                    "expected version \(version), found \(current.map { "\($0.commitTS)" } ?? "none")",
                    key: key)
            }
            return .some(value)
        }
    }

    @discardableResult
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes, ifAbsent: Bool) async throws -> UInt64 {
        try await writeOne(key, value) { current in
            if ifAbsent, current?.value != nil {
                throw IsoKVError(.uniqueViolation, "key exists (version \(current!.commitTS))", key: key)
            }
            return .some(value)
        }
    }

    @discardableResult
    nonisolated(nonsending) public func delete(_ key: Bytes) async throws -> Bool {
        var existed = false
        _ = try await writeOne(key, nil) { current in
            existed = current?.value != nil
            return existed ? .some(nil) : nil
        }
        return existed
    }

    nonisolated(nonsending) public func delete(_ key: Bytes, ifVersion version: UInt64) async throws {
        _ = try await writeOne(key, nil) { current in
            guard let current, current.value != nil, current.commitTS == version else {
                throw IsoKVError(
                    .versionMismatch,
                    "expected version \(version), found \(current.map { "\($0.commitTS)" } ?? "none")",
                    key: key)
            }
            return .some(nil)
        }
    }

    /// ```swift
    /// let n = try await db.increment("visits", by: 1)
    /// ```
    @discardableResult
    nonisolated(nonsending) public func increment(_ key: Bytes, by delta: Int64) async throws -> Int64 {
        var result: Int64 = 0
        _ = try await writeOne(key, nil) { current in
            var old: Int64 = 0
            if let bytes = current?.value {
                guard let n = bytes.int64 else {
                    throw IsoKVError(.invalidInput, "value is not a decimal 64-bit integer", key: key)
                }
                old = n
            }
            let (sum, overflow) = old.addingReportingOverflow(delta)
            if overflow { throw IsoKVError(.numericOutOfRange, "\(old) + \(delta) overflows Int64", key: key) }
            result = sum
            return .some(Bytes(sum))
        }
        return result
    }

    /// One single-key transaction: take the row's exclusive lock (waiting if needed), give `decide` the newest
    /// committed version, write what it returns (`.some(nil)` deletes, nil writes nothing) and commit. Returns the
    /// commit sequence number (the new version), or the current version if nothing was written.
    nonisolated(nonsending) func writeOne(
        _ key: Bytes, _ value: Bytes?,
        _ decide: (CommittedVersion?) throws -> Bytes??
    ) async throws -> UInt64 {
        try limits.check(key: key)
        if let value { try limits.check(value: value, key: key) }
        let tx = newTransaction(.readCommitted, readOnly: false)
        do {
            guard let chain = try await tx.acquireRow(key, .forUpdate, wait: .block) else {
                preconditionFailure("a blocking lock request is never skipped")
            }
            let current = chain.state.withLock { $0.newest }
            guard let decision = try decide(current) else {
                tx.rollbackNow()
                return current?.commitTS ?? 0
            }
            let write = PendingWrite(owner: tx.txid, value: decision, buildVersion: true)  // allocates: before the lock
            chain.state.withLock { $0.pending = write }
            tx.writeOrder.append(chain)
            tx.written.insert(ObjectIdentifier(chain))
            return try await tx.commitReturningVersion() ?? 0
        } catch {
            tx.rollbackNow()
            throw error
        }
    }
}
