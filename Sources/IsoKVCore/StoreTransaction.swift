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
    nonisolated(nonsending) func scan(_ range: KeyRange, limit: Int?, reverse: Bool, lock: RowLockMode?, wait: LockWait)
        async throws
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
    nonisolated(nonsending) public func scan(_ range: KeyRange = .all, limit: Int? = nil, reverse: Bool = false)
        async throws -> [KeyValue]
    {
        try await scan(range, limit: limit, reverse: reverse, lock: nil, wait: .block)
    }

    /// ``scan(_:limit:reverse:lock:wait:)`` over the keys starting with `prefix`.
    nonisolated(nonsending) public func scan(prefix: Bytes, limit: Int? = nil, reverse: Bool = false) async throws
        -> [KeyValue]
    {
        try await scan(.prefix(prefix), limit: limit, reverse: reverse, lock: nil, wait: .block)
    }

    /// Locking scan: `try await tx.scan(.prefix("jobs/"), limit: 1, lock: .forUpdate, wait: .skipLocked)`.
    nonisolated(nonsending) public func scan(
        _ range: KeyRange, limit: Int? = nil, reverse: Bool = false, lock: RowLockMode,
        wait: LockWait = .block
    ) async throws -> [KeyValue] {
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
