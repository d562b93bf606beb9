import IsoKVCore
import PostgresNIO

/// A transaction on PostgreSQL: one pooled connection, held from `begin` until `commit`/`rollback` (see
/// ``HeldConnection``). Not `Sendable`: it belongs to the task that began it, and its statements run one at a time.
///
/// ```swift
/// let tx = try await store.begin(.snapshot)
/// let balance = try await tx.get("alice")?.int64 ?? 0
/// try await tx.put("alice", Bytes(balance - 10))
/// try await tx.commit()
/// ```
///
/// Life cycle: `active` → `committed` | `rolledBack`. An error reported by PostgreSQL aborts the PostgreSQL
/// transaction, so the handle becomes `failed`: later operations throw `25P02` (naming the first error) without a
/// round trip, `commit()` throws `25P02`, `rollback()` succeeds. After `40001`/`40P01` (retryable) that is final, as in
/// the engine; after any other server error (`55P03`, `22003`, …) ``rollback(to:)`` to a savepoint taken before it
/// makes the transaction usable again, as PostgreSQL allows. Errors found before any SQL is sent — limits (`54000`,
/// `22023`), a write in a read-only transaction (`25006`), a bad savepoint (`3B001`), a duplicate `insert`
/// (`23505`, reported by `ON CONFLICT DO NOTHING`) — fail only the operation, as in the engine. A lost connection
/// (`08006`) ends the transaction: it was rolled back by the server, or, if it happened during `commit()`, its
/// outcome is unknown.
///
/// Files: reads and writes here; `PostgresTransaction+Scan.swift`, `PostgresTransaction+Savepoint.swift`,
/// `PostgresTransaction+End.swift` (commit, rollback, failure).
public final class PostgresTransaction: StoreTransaction {
    let store: PostgresStore
    /// The connection, from `begin` until the transaction ends; nil afterwards (released to the pool).
    var held: HeldConnection?
    public let id: TransactionID
    public let isolation: IsolationLevel
    public let isReadOnly: Bool

    enum State {
        case active
        /// PostgreSQL reported `error`; the server-side transaction is aborted. `recoverable`: not `40001`/`40P01`,
        /// so a rollback to an earlier savepoint may revive it.
        case failed(IsoKVError, recoverable: Bool)
        case committed
        case rolledBack
    }
    var state: State = .active

    /// Keys written, in first-write order, with their set (for `maxWritesPerTransaction`, counted before the SQL).
    var writtenKeys: [Bytes] = []
    var writtenSet: Set<Bytes> = []
    /// Live savepoints, oldest first, with the length of ``writtenKeys`` when each was taken.
    var savepoints: [(id: Int, writtenMark: Int)] = []
    var nextSavepointID = 1

    init(store: PostgresStore, held: HeldConnection, id: UInt64, isolation: IsolationLevel, readOnly: Bool) {
        self.store = store
        self.held = held
        self.id = TransactionID(rawValue: id)
        self.isolation = isolation
        self.isReadOnly = readOnly
    }

    deinit {
        // Dropped without commit or rollback: the lease task rolls the connection back before the pool gets it.
        if let held {
            held.release(.rollback)
            store.transactionEnded(id.rawValue)
        }
    }

    // MARK: State checks

    func checkActive() throws {
        switch state {
        case .active: return
        case .failed(let e, _):
            throw Self.aborted(by: e)
        case .committed, .rolledBack:
            throw IsoKVError(.noActiveTransaction, "transaction \(id) has already ended")
        }
    }

    /// The `25P02` for an operation after `cause` failed the transaction.
    static func aborted(by cause: IsoKVError) -> IsoKVError {
        IsoKVError(
            .transactionAborted, "current transaction is aborted (\(cause.code.rawValue): \(cause.message)); roll back",
            key: cause.key, otherTransaction: cause.otherTransaction)
    }

    func checkWritable() throws {
        try checkActive()
        if isReadOnly { throw IsoKVError(.readOnlyTransaction, "cannot write or lock in a read-only transaction") }
    }

    /// Counts `key` as written; `54000` before the SQL if it would exceed `maxWritesPerTransaction`.
    func noteWrite(_ key: Bytes) throws {
        if writtenSet.contains(key) { return }
        let limit = store.configuration.limits.maxWritesPerTransaction
        if writtenSet.count >= limit {
            throw IsoKVError(.limitExceeded, "more than maxWritesPerTransaction (\(limit)) keys written", key: key)
        }
        writtenSet.insert(key)
        writtenKeys.append(key)
    }

    /// Runs `body` on the transaction's connection; a failure is mapped and, when it came from the server or the
    /// connection, fails the transaction (see the type's life cycle).
    nonisolated(nonsending) func run<R>(
        key: Bytes? = nil, _ body: nonisolated(nonsending) (PostgresConnection) async throws -> R
    ) async throws -> R {
        guard let held else { throw IsoKVError(.noActiveTransaction, "transaction \(id) has already ended") }
        do {
            try held.checkOpen()
            return try await body(held.connection)
        } catch {
            let mapped = PostgresErrorMapping.map(error, key: key)
            fail(mapped)
            throw mapped
        }
    }

    // MARK: Reads

    /// The value of `key` as this transaction sees it: its own writes, then its snapshot (`.snapshot`,
    /// `.serializable`) or the newest committed value (`.readCommitted`, and `.readUncommitted`, which PostgreSQL runs
    /// as read committed). Never waits for locks.
    ///
    /// ```swift
    /// let balance = try await tx.get("acct/alice")?.int64 ?? 0
    /// ```
    nonisolated(nonsending) public func get(_ key: Bytes) async throws -> Bytes? {
        try checkActive()
        try store.configuration.limits.check(key: key)
        let rows = try await run(key: key) { try await $0.rows(GetStatement(key: key)) }
        return rows.first.map { Bytes($0.0) }
    }

    // MARK: Writes

    /// Writes `value` at `key` (an upsert with a fresh version), waiting for the row lock if another transaction
    /// holds it (`55P03` after the lock timeout; `40001` at `.snapshot`/`.serializable` if the row changed after the
    /// snapshot).
    ///
    /// ```swift
    /// try await tx.put("acct/alice", Bytes(balance - 10))
    /// ```
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes) async throws {
        _ = try await putReturningVersion(key, value)
    }

    /// ``put(_:_:)``, returning the version the row has if this transaction commits (history recording in tests).
    @_spi(Testing)
    nonisolated(nonsending) public func putReturningVersion(_ key: Bytes, _ value: Bytes) async throws -> UInt64 {
        try checkWritable()
        try store.configuration.limits.check(key: key)
        try store.configuration.limits.check(value: value, key: key)
        try noteWrite(key)
        return UInt64(try await run(key: key) { try await $0.rows(PutStatement(key: key, value: value)) }[0])
    }

    /// Writes `value` at `key` unless a row exists there: `23505` for a row visible to this transaction or committed
    /// by another one (after waiting for it); the transaction stays usable. At `.snapshot`/`.serializable`, a row
    /// committed after the snapshot is `40001` instead (PostgreSQL's `ON CONFLICT` rule); the retry then sees it.
    ///
    /// ```swift
    /// do { try await tx.insert("user/ada", profile) }
    /// catch IsoKVError.Code.uniqueViolation { /* taken; the transaction goes on */ }
    /// ```
    nonisolated(nonsending) public func insert(_ key: Bytes, _ value: Bytes) async throws {
        _ = try await insertReturningVersion(key, value)
    }

    /// ``insert(_:_:)``, returning the version the row has if this transaction commits (history recording in tests).
    @_spi(Testing)
    nonisolated(nonsending) public func insertReturningVersion(_ key: Bytes, _ value: Bytes) async throws -> UInt64 {
        try checkWritable()
        try store.configuration.limits.check(key: key)
        try store.configuration.limits.check(value: value, key: key)
        try noteWrite(key)
        let rows = try await run(key: key) { try await $0.rows(InsertStatement(key: key, value: value)) }
        guard let version = rows.first else { throw IsoKVError(.uniqueViolation, "duplicate key", key: key) }
        return UInt64(version)
    }

    /// Deletes `key` (waiting for its row lock); returns whether a row was visible.
    ///
    /// ```swift
    /// let existed = try await tx.delete("jobs/17")
    /// ```
    @discardableResult
    nonisolated(nonsending) public func delete(_ key: Bytes) async throws -> Bool {
        try await deleteReturningVersion(key) != nil
    }

    /// ``delete(_:)``, returning the deletion's own version (its tombstone, a fresh number from the version
    /// sequence taken with the row lock held) if a row was deleted, or nil (history recording in tests).
    @_spi(Testing)
    nonisolated(nonsending) public func deleteReturningVersion(_ key: Bytes) async throws -> UInt64? {
        try checkWritable()
        try store.configuration.limits.check(key: key)
        try noteWrite(key)
        return try await run(key: key) { try await $0.rows(DeleteStatement(key: key)) }.first.map { UInt64($0) }
    }

    /// Locks `key`'s row in `mode` (`SELECT … FOR UPDATE|FOR SHARE [NOWAIT|SKIP LOCKED]`) and returns its newest
    /// value. An absent key has no row, so nothing is locked and nil is returned (the engine locks absent keys; use
    /// `insert` or `.serializable` to guard a key's creation). `.noWait` fails with `55P03`; `.skipLocked` returns
    /// nil without locking if another transaction holds the lock.
    ///
    /// ```swift
    /// let n = try await tx.lock("counter", .forUpdate)?.int64 ?? 0     // others wait until we end
    /// try await tx.put("counter", Bytes(n + 1))
    /// ```
    @discardableResult
    nonisolated(nonsending) public func lock(_ key: Bytes, _ mode: RowLockMode, wait: LockWait) async throws -> Bytes? {
        try checkWritable()
        try store.configuration.limits.check(key: key)
        let rows: [ByteBuffer] = try await run(key: key) { c in
            switch (mode, wait) {
            case (.forUpdate, .block): return try await c.rows(LockForUpdate(key: key))
            case (.forUpdate, .noWait): return try await c.rows(LockForUpdateNoWait(key: key))
            case (.forUpdate, .skipLocked): return try await c.rows(LockForUpdateSkipLocked(key: key))
            case (.forShare, .block): return try await c.rows(LockForShare(key: key))
            case (.forShare, .noWait): return try await c.rows(LockForShareNoWait(key: key))
            case (.forShare, .skipLocked): return try await c.rows(LockForShareSkipLocked(key: key))
            }
        }
        return rows.first.map { Bytes($0) }
    }
}
