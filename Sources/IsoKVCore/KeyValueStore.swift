/// The store contract: what every IsoKV backend implements (the embedded engine's `Database` in the `IsoKV`
/// module, and any other store written against this module), and what the conformance suite tests.
///
/// Entry points, by purpose:
/// - transactions: ``begin(_:readOnly:)`` (manual) and ``transaction(_:readOnly:retry:_:)`` (closure, the primary
///   API: commits on return, rolls back on throw, retries retryable failures);
/// - single-key optimistic operations, each its own atomic transaction: ``get(_:)`` with the version (ETag),
///   ``put(_:_:)``, ``put(_:_:ifVersion:)``, ``put(_:_:ifAbsent:)``, ``delete(_:)``, ``delete(_:ifVersion:)``,
///   ``increment(_:by:)``, ``update(_:maxAttempts:_:)``.
///
/// ```swift
/// let db = Database.inMemory()
/// let total = try await db.transaction(.snapshot) { tx in
///     let n = try await tx.get("counter")?.int64 ?? 0
///     try await tx.put("counter", Bytes(n + 1))
///     return n + 1
/// }
/// let v = try await db.get("counter")          // VersionedValue(value: "1", version: …)
/// _ = try await db.put("counter", "5", ifVersion: v!.version)
/// ```
public protocol KeyValueStore: Sendable {
    /// The transaction handle. Not `Sendable`: it cannot leave the task that began it.
    associatedtype Transaction: StoreTransaction

    /// Begins a transaction. Prefer ``transaction(_:readOnly:retry:_:)``, which cannot forget to end it.
    nonisolated(nonsending) func begin(_ isolation: IsolationLevel, readOnly: Bool) async throws -> Transaction

    /// The committed value of `key` and its version, or nil if absent. Never waits for locks.
    nonisolated(nonsending) func get(_ key: Bytes) async throws -> VersionedValue?

    /// Stores `value` unconditionally; returns the new version.
    @discardableResult
    nonisolated(nonsending) func put(_ key: Bytes, _ value: Bytes) async throws -> UInt64

    /// Stores `value` if the current version of `key` is `version`; otherwise throws `IK412`
    /// (``IsoKVError/Code/versionMismatch``), also when the key is absent. Returns the new version.
    @discardableResult
    nonisolated(nonsending) func put(_ key: Bytes, _ value: Bytes, ifVersion version: UInt64) async throws -> UInt64

    /// With `ifAbsent: true`, stores `value` only if `key` is absent, otherwise throws `23505`; with `false`, the
    /// same as ``put(_:_:)``. Returns the new version.
    @discardableResult
    nonisolated(nonsending) func put(_ key: Bytes, _ value: Bytes, ifAbsent: Bool) async throws -> UInt64

    /// Deletes `key`; returns whether it was present.
    @discardableResult
    nonisolated(nonsending) func delete(_ key: Bytes) async throws -> Bool

    /// Deletes `key` if its current version is `version`; otherwise throws `IK412`.
    nonisolated(nonsending) func delete(_ key: Bytes, ifVersion version: UInt64) async throws

    /// Adds `delta` to the decimal integer stored at `key` (absent counts as 0) atomically; returns the new value.
    /// Throws `22023` if the stored value is not a decimal `Int64`, `22003` on overflow.
    @discardableResult
    nonisolated(nonsending) func increment(_ key: Bytes, by delta: Int64) async throws -> Int64
}

extension KeyValueStore {
    /// Begins a read-write transaction at `isolation` (``IsolationLevel/default`` if omitted).
    nonisolated(nonsending) public func begin(_ isolation: IsolationLevel = .default) async throws -> Transaction {
        try await begin(isolation, readOnly: false)
    }

    /// Adds one: `try await db.increment("visits")`.
    @discardableResult
    nonisolated(nonsending) public func increment(_ key: Bytes) async throws -> Int64 {
        try await increment(key, by: 1)
    }
}
