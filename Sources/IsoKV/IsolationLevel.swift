/// How much a transaction sees of concurrent transactions. Each level is described, rule by rule, in DESIGN.md.
///
/// | level              | dirty write | dirty read | lost update (read-modify-write) | non-repeatable read | phantom | read skew |
/// |--------------------|-------------|------------|---------------------------------|---------------------|---------|-----------|
/// | `.readUncommitted` | prevented   | ALLOWED    | allowed                         | allowed             | allowed | allowed   |
/// | `.readCommitted`   | prevented   | prevented  | allowed                         | allowed             | allowed | allowed   |
/// | `.snapshot`        | prevented   | prevented  | prevented (`40001`)             | prevented           | prevented | prevented |
/// | `.serializable`    | prevented   | prevented  | prevented (`40001`)             | prevented           | prevented | prevented |
///
/// Write skew (G2-item) and predicate write skew (G2) are possible at `.snapshot`; `.serializable` (SSI, see
/// SSI/DESIGN.md) prevents them by aborting one transaction of each dangerous structure with `40001`.
///
/// ```swift
/// let tx = try await db.begin(.readCommitted)
/// ```
public enum IsolationLevel: String, Sendable, Hashable, CaseIterable, Codable {
    /// Reads see the newest version of each key, including other transactions' uncommitted writes (true dirty
    /// reads, unlike PostgreSQL, which treats this level as read committed). Writes behave as at read committed.
    case readUncommitted = "read-uncommitted"
    /// Each operation reads a fresh snapshot of committed data (one scan sees one snapshot). A writer that waited
    /// for a row lock proceeds against the newest committed version.
    case readCommitted = "read-committed"
    /// One snapshot per transaction, taken at its first operation. First updater wins: writing or locking a key
    /// changed by a transaction that committed after the snapshot fails with `40001`.
    case snapshot = "snapshot"
    /// Serializable snapshot isolation (PostgreSQL's SERIALIZABLE): snapshot isolation plus tracking of what each
    /// serializable transaction read (keys and scanned ranges); a transaction that could complete a cycle of
    /// dependencies fails with `40001` (at a read, a write or commit) and can simply be retried. Read-only
    /// transactions with a safe snapshot never fail; `deferrable` ones wait for one
    /// (``Database/begin(_:readOnly:deferrable:)``). Only serializable transactions are tracked: mixed with
    /// other levels, the guarantee covers the serializable transactions among themselves (see SSI/DESIGN.md).
    case serializable = "serializable"

    /// PostgreSQL's name for ``snapshot``.
    public static let repeatableRead = IsolationLevel.snapshot

    /// The level `begin()` and `transaction {}` use when none is given: ``serializable`` (safe by default).
    public static let `default` = IsolationLevel.serializable

    /// Whether the level reads one snapshot for the whole transaction (`.snapshot` and `.serializable`).
    public var hasTransactionSnapshot: Bool { self == .snapshot || self == .serializable }
}

/// A row lock mode.
public enum RowLockMode: String, Sendable, Hashable, Codable {
    /// Shared: many transactions may hold it at once; it blocks writers and `.forUpdate` lockers.
    case forShare = "for-share"
    /// Exclusive: blocks every other locker and writer. Every write takes it implicitly.
    case forUpdate = "for-update"

    /// Whether `self` held by one transaction is compatible with `other` requested by another.
    func isCompatible(with other: RowLockMode) -> Bool { self == .forShare && other == .forShare }

    /// Whether holding `self` already satisfies a request for `other`.
    func covers(_ other: RowLockMode) -> Bool { self == .forUpdate || other == .forShare }
}

/// What to do when a row lock is held by another transaction.
public enum LockWait: String, Sendable, Hashable, Codable {
    /// Suspend until the lock is granted, the lock timeout expires (`55P03`), or a deadlock is detected (`40P01`).
    case block
    /// Fail at once with `55P03`.
    case noWait = "no-wait"
    /// Only for locking scans: leave out the rows locked by others.
    case skipLocked = "skip-locked"
}

/// A key range for scans: `lower` inclusive, `upper` exclusive, nil meaning unbounded.
///
/// ```swift
/// try await tx.scan(.prefix("jobs/"), limit: 10)
/// try await tx.scan(KeyRange(from: "a", to: "m"))
/// ```
public struct KeyRange: Sendable, Hashable {
    public var lower: Bytes?
    public var upper: Bytes?

    public init(from lower: Bytes? = nil, to upper: Bytes? = nil) {
        self.lower = lower
        self.upper = upper
    }

    /// Every key.
    public static let all = KeyRange()

    /// Every key that starts with `prefix`.
    public static func prefix(_ prefix: Bytes) -> KeyRange {
        var upper = prefix.bytes
        while let last = upper.last, last == 0xFF { upper.removeLast() }
        if upper.isEmpty { return KeyRange(from: prefix, to: nil) }
        upper[upper.count - 1] += 1
        return KeyRange(from: prefix, to: Bytes(upper))
    }

    public func contains(_ key: Bytes) -> Bool {
        if let lower, key < lower { return false }
        if let upper, !(key < upper) { return false }
        return true
    }
}

/// A key and its value, as scans return them.
public struct KeyValue: Sendable, Hashable {
    public var key: Bytes
    public var value: Bytes
    public init(key: Bytes, value: Bytes) { self.key = key; self.value = value }
}

/// A committed value with its version (the ETag).
///
/// The version is the commit sequence number of the transaction that wrote the value: strictly increasing per key,
/// never reused, even when a key is deleted and created again; not dense (other keys' commits take numbers too).
public struct VersionedValue: Sendable, Hashable {
    public var value: Bytes
    public var version: UInt64
    public init(value: Bytes, version: UInt64) { self.value = value; self.version = version }
}

/// A savepoint inside one transaction, as returned by ``StoreTransaction/savepoint()``.
public struct Savepoint: Sendable, Hashable {
    /// The transaction it belongs to.
    public let transaction: TransactionID
    /// Unique within the transaction.
    public let id: Int
    public init(transaction: TransactionID, id: Int) { self.transaction = transaction; self.id = id }
}

/// Explicit size limits, checked on every operation (`54000` when exceeded, `22023` for an empty key).
public struct Limits: Sendable, Hashable {
    /// Longest key in bytes (default 4 KiB). Keys must not be empty.
    public var maxKeySize: Int = 4096
    /// Longest value in bytes (default 1 MiB).
    public var maxValueSize: Int = 1 << 20
    /// Most distinct keys one transaction may write (default 100 000).
    public var maxWritesPerTransaction: Int = 100_000
    /// Most rows one scan may return (default 1 000 000); larger `limit`s are `22023`.
    public var maxScanLimit: Int = 1_000_000

    public init() {}
    public init(maxKeySize: Int = 4096, maxValueSize: Int = 1 << 20, maxWritesPerTransaction: Int = 100_000) {
        self.maxKeySize = maxKeySize
        self.maxValueSize = maxValueSize
        self.maxWritesPerTransaction = maxWritesPerTransaction
    }

    func check(key: Bytes) throws {
        if key.isEmpty { throw IsoKVError(.invalidInput, "key must not be empty") }
        if key.count > maxKeySize {
            throw IsoKVError(.limitExceeded, "key of \(key.count) bytes exceeds maxKeySize \(maxKeySize)",
                             key: Bytes(key.bytes.prefix(64)))
        }
    }

    func check(value: Bytes, key: Bytes) throws {
        if value.count > maxValueSize {
            throw IsoKVError(.limitExceeded, "value of \(value.count) bytes exceeds maxValueSize \(maxValueSize)",
                             key: key)
        }
    }
}
