/// The store protocol: what every IsoKV backend (the embedded ``Database``, later PostgreSQL and the HTTP client)
/// implements, and what the one conformance suite tests.
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

/// A transaction handle. Not `Sendable`, so it cannot escape the task that owns it; use it from one task at a time.
///
/// Reads never wait for locks; writes take the key's exclusive row lock until commit or rollback. See
/// ``IsolationLevel`` for what each level sees.
public protocol StoreTransaction: AnyObject {
    /// This transaction's identity, as reported in other transactions' errors.
    var id: TransactionID { get }
    var isolation: IsolationLevel { get }
    var isReadOnly: Bool { get }

    /// The value of `key` visible to this transaction (its own writes first), or nil.
    nonisolated(nonsending) func get(_ key: Bytes) async throws -> Bytes?

    /// Writes `value` at `key` (insert or overwrite).
    nonisolated(nonsending) func put(_ key: Bytes, _ value: Bytes) async throws

    /// Writes `value` at `key`, failing with `23505` if the key is visible to this transaction or was committed
    /// by another one (after a possible wait for its row lock).
    nonisolated(nonsending) func insert(_ key: Bytes, _ value: Bytes) async throws

    /// Deletes `key`; returns whether a value was visible.
    @discardableResult
    nonisolated(nonsending) func delete(_ key: Bytes) async throws -> Bool

    /// The visible key-value pairs in `range`, in key order (descending when `reverse`), at most `limit`.
    /// With `lock`, each returned row is locked in that mode; `wait: .skipLocked` leaves out rows locked by
    /// other transactions (queue consumers), `.noWait` fails with `55P03`, `.block` waits.
    nonisolated(nonsending) func scan(_ range: KeyRange, limit: Int?, reverse: Bool, lock: RowLockMode?, wait: LockWait) async throws
        -> [KeyValue]

    /// Locks the row of `key` (present or not) in `mode` and returns its current value.
    @discardableResult
    nonisolated(nonsending) func lock(_ key: Bytes, _ mode: RowLockMode, wait: LockWait) async throws -> Bytes?

    /// Marks a point that ``rollback(to:)`` can return to.
    nonisolated(nonsending) func savepoint() async throws -> Savepoint

    /// Undoes the writes made after `savepoint` and releases the row locks first taken after it (a lock held
    /// before it returns to its earlier mode), as PostgreSQL does. The savepoint stays usable; later ones are gone.
    nonisolated(nonsending) func rollback(to savepoint: Savepoint) async throws

    /// Forgets `savepoint` and every savepoint made after it, keeping their writes and locks.
    nonisolated(nonsending) func release(_ savepoint: Savepoint) async throws

    /// Makes the writes visible atomically and releases the locks. Throws `25P02` if the transaction is dead.
    nonisolated(nonsending) func commit() async throws

    /// Undoes everything and releases the locks. Always succeeds; calling it again does nothing.
    nonisolated(nonsending) func rollback() async throws
}

// MARK: - Conveniences

extension StoreTransaction {
    /// ``scan(_:limit:reverse:lock:wait:)`` without locks.
    nonisolated(nonsending) public func scan(_ range: KeyRange = .all, limit: Int? = nil, reverse: Bool = false) async throws -> [KeyValue] {
        try await scan(range, limit: limit, reverse: reverse, lock: nil, wait: .block)
    }

    /// ``scan(_:limit:reverse:lock:wait:)`` over the keys starting with `prefix`.
    nonisolated(nonsending) public func scan(prefix: Bytes, limit: Int? = nil, reverse: Bool = false) async throws -> [KeyValue] {
        try await scan(.prefix(prefix), limit: limit, reverse: reverse, lock: nil, wait: .block)
    }

    /// Locking scan: `try await tx.scan(.prefix("jobs/"), limit: 1, lock: .forUpdate, wait: .skipLocked)`.
    nonisolated(nonsending) public func scan(_ range: KeyRange, limit: Int? = nil, reverse: Bool = false, lock: RowLockMode,
                     wait: LockWait = .block) async throws -> [KeyValue] {
        try await scan(range, limit: limit, reverse: reverse, lock: Optional(lock), wait: wait)
    }

    /// Locks `key` for update, waiting if needed, and returns its value.
    @discardableResult
    nonisolated(nonsending) public func lock(_ key: Bytes, _ mode: RowLockMode = .forUpdate) async throws -> Bytes? {
        try await lock(key, mode, wait: .block)
    }

    /// The value decoded from JSON, or nil if absent.
    nonisolated(nonsending) public func get<T: Decodable>(_ key: Bytes, as type: T.Type) async throws -> T? {
        try await get(key)?.decode(type)
    }

    /// Stores the JSON encoding of `value`.
    nonisolated(nonsending) public func put<T: Encodable>(_ key: Bytes, json value: T) async throws {
        try await put(key, Bytes(json: value))
    }
}

extension KeyValueStore {
    /// Begins a read-write transaction at `isolation` (``IsolationLevel/default`` if omitted).
    nonisolated(nonsending) public func begin(_ isolation: IsolationLevel = .default) async throws -> Transaction {
        try await begin(isolation, readOnly: false)
    }

    /// Adds one: `try await db.increment("visits")`.
    @discardableResult
    nonisolated(nonsending) public func increment(_ key: Bytes) async throws -> Int64 { try await increment(key, by: 1) }
}
