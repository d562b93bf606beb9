/// The one error type of IsoKV: a stable SQLSTATE-like ``Code``, a message, and where known the key and the other
/// transaction involved.
///
/// ```swift
/// do {
///     try await tx.insert("user/1", "Ada")
/// } catch let error as IsoKVError where error.code == .uniqueViolation {
///     print(error.key!, "exists")
/// }
/// ```
///
/// ``isRetryable`` is true exactly for the failures that a retry of the whole transaction may cure
/// (`40001`, `40P01`); ``KeyValueStore/transaction(_:readOnly:retry:_:)`` retries those.
public struct IsoKVError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable five-character code. The classes follow PostgreSQL's SQLSTATE where PostgreSQL has one.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// `40001`: a concurrent transaction changed a row this snapshot or serializable transaction wrote or locked
        /// (first updater wins), or, at `.serializable`, this transaction was part of a dangerous structure of
        /// read/write dependencies (SSI; the message names the structure, `key` and `otherTransaction` the
        /// conflict). Retryable. The transaction is dead afterwards.
        public static let serializationFailure = Code(rawValue: "40001")
        /// `40P01`: this transaction was chosen as the victim of a lock wait cycle. Retryable. Dead afterwards.
        public static let deadlockDetected = Code(rawValue: "40P01")
        /// `55P03`: a row lock was not available (`wait: .noWait`) or the lock timeout expired.
        public static let lockNotAvailable = Code(rawValue: "55P03")
        /// `23505`: ``StoreTransaction/insert(_:_:)`` or `put(_:_:ifAbsent:)` found the key present.
        public static let uniqueViolation = Code(rawValue: "23505")
        /// `25P02`: an earlier `40001`/`40P01` killed this transaction; only `rollback()` is accepted.
        public static let transactionAborted = Code(rawValue: "25P02")
        /// `25P01`: the transaction already committed or rolled back.
        public static let noActiveTransaction = Code(rawValue: "25P01")
        /// `25006`: a write or a row lock in a read-only transaction.
        public static let readOnlyTransaction = Code(rawValue: "25006")
        /// `IK412`: a version precondition (`ifVersion:`) did not hold (HTTP's 412 Precondition Failed).
        public static let versionMismatch = Code(rawValue: "IK412")
        /// `54000`: a configured limit (key size, value size, writes per transaction) was exceeded.
        public static let limitExceeded = Code(rawValue: "54000")
        /// `22023`: an invalid argument (empty key, bad limit, a value that is not a number for `increment`).
        public static let invalidInput = Code(rawValue: "22023")
        /// `22003`: `increment` would overflow `Int64`.
        public static let numericOutOfRange = Code(rawValue: "22003")
        /// `3B001`: the savepoint does not belong to this transaction or was released or rolled back past.
        public static let invalidSavepoint = Code(rawValue: "3B001")

        /// `58030`: the write-ahead log failed (a write or fsync error, a full disk): this commit is not durable and
        /// the database accepts no more commits until it is closed and reopened (PostgreSQL's `io_error`; the
        /// "fsyncgate" rule: a failed fsync is never retried). Not retryable. Reads keep working.
        public static let storageFailure = IsoKVError.Code(rawValue: "58030")
        /// `57P01`: the database was closed; commits are refused (PostgreSQL's `admin_shutdown`).
        public static let databaseClosed = IsoKVError.Code(rawValue: "57P01")
        /// `XX000`: an internal consistency check failed — a bug in IsoKV, not in the caller (PostgreSQL's
        /// `internal_error`). Thrown only in strict mode (`Database.Configuration.checkAfterEveryCommit`), by the
        /// commit after which `Database.check` found a broken invariant; that commit has taken effect. Not retryable.
        public static let internalError = IsoKVError.Code(rawValue: "XX000")

        /// `55006` object_in_use: the data directory is held by another open store (this process or another: its
        /// `LOCK` file is locked; `Database.open`), or, over HTTP, another request is running on the same
        /// interactive transaction or scan cursor (requests to one transaction are not queued).
        public static let objectInUse = IsoKVError.Code(rawValue: "55006")
        /// `XX001`: stored data is damaged anywhere but a torn tail (a bad record followed by a valid one, a bad
        /// header, a damaged checkpoint, a missing WAL segment); ``IsoKVError/file`` and ``IsoKVError/offset`` say
        /// where. Never skipped silently.
        public static let dataCorrupted = IsoKVError.Code(rawValue: "XX001")
        /// `0A000`: a file was written by a format version this build cannot read.
        public static let unsupportedFormat = IsoKVError.Code(rawValue: "0A000")
        /// `55000`: the object is not in a state that allows the operation: a checkpoint requested while the
        /// background checkpoint is being written (try again later), or a data directory that other users can
        /// write (fix its permissions: `chmod 700`).
        public static let objectNotInPrerequisiteState = IsoKVError.Code(rawValue: "55000")

        /// `08006`: the connection to a remote store (PostgreSQL) was lost, or none could be made in time. Not
        /// retryable by `transaction { }`: if it interrupted a commit or a single-key write, that write may or may
        /// not have happened (read the key to find out). A later call can succeed once the server is back.
        public static let connectionFailure = IsoKVError.Code(rawValue: "08006")

        // Codes of the HTTP API (the server returns them; the client maps them back to `IsoKVError`).
        /// `02000` no_data: the key (or job) is absent.
        public static let noData = IsoKVError.Code(rawValue: "02000")
        /// `22P02`: the request body is not valid JSON of the expected shape, or a field is not valid base64.
        public static let invalidTextRepresentation = IsoKVError.Code(rawValue: "22P02")
        /// `42804` datatype_mismatch: `incr` on a stored value that is not a decimal 64-bit integer.
        public static let datatypeMismatch = IsoKVError.Code(rawValue: "42804")
        /// `25P03`: the interactive transaction was rolled back after its idle timeout.
        public static let idleTimeout = IsoKVError.Code(rawValue: "25P03")
        /// `25P04`: the interactive transaction was rolled back at its lifetime cap.
        public static let transactionTimeout = IsoKVError.Code(rawValue: "25P04")
        /// `72000` snapshot_too_old: a scan cursor whose snapshot is gone (expired, finished, or the server restarted).
        public static let snapshotTooOld = IsoKVError.Code(rawValue: "72000")
        /// `53300`: too many open interactive transactions (or scan cursors).
        public static let tooManyTransactions = IsoKVError.Code(rawValue: "53300")
        /// `28000`: the bearer token is missing or wrong.
        public static let invalidAuthorization = IsoKVError.Code(rawValue: "28000")
        /// `IK414`: the request URL (a key in the path) is longer than the key limit.
        public static let uriTooLong = IsoKVError.Code(rawValue: "IK414")
        /// `IK404`: no such route.
        public static let noSuchRoute = IsoKVError.Code(rawValue: "IK404")
        /// `IK405`: the route exists but not with this method.
        public static let methodNotAllowed = IsoKVError.Code(rawValue: "IK405")

        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String
    /// The key involved, when there is one.
    public var key: Bytes?
    /// The other transaction involved (the lock holder, the writer that won), when known.
    public var otherTransaction: TransactionID?
    /// The file involved in a storage error (`XX001`, `58030`, `0A000`, `55006`), when there is one.
    public var file: String?
    /// The byte offset of the damage in ``file`` (`XX001`), when known.
    public var offset: Int64?

    public init(
        _ code: Code, _ message: String, key: Bytes? = nil, otherTransaction: TransactionID? = nil,
        file: String? = nil, offset: Int64? = nil
    ) {
        self.code = code
        self.message = message
        self.key = key
        self.otherTransaction = otherTransaction
        self.file = file
        self.offset = offset
    }

    /// True for `40001` and `40P01`: retrying the whole transaction may succeed.
    public var isRetryable: Bool { code == .serializationFailure || code == .deadlockDetected }

    public var description: String {
        var s = "IsoKVError \(code.rawValue): \(message)"
        if let key {
            s += " (key \(key)" + (otherTransaction.map { ", other transaction \($0)" } ?? "") + ")"
        } else if let otherTransaction {
            s += " (other transaction \(otherTransaction))"
        }
        return s
    }
}

extension IsoKVError.Code {
    /// Matches an error against a code: `catch IsoKVError.Code.deadlockDetected`.
    public static func ~= (code: IsoKVError.Code, error: any Error) -> Bool {
        (error as? IsoKVError)?.code == code
    }
}
