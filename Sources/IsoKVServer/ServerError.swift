import IsoKVCore

/// Codes the server adds to the engine's (`IsoKVError.Code`): HTTP-level conditions with SQLSTATE-like names.
/// Every code, the engine's and these, has exactly one HTTP status, in ``ErrorMapping``.
extension IsoKVError.Code {
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
    /// `55006` object_in_use: another request is running on the same interactive transaction or cursor.
    public static let transactionBusy = IsoKVError.Code(rawValue: "55006")
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
    /// `XX000`: an unexpected internal error (logged with the request id).
    public static let internalError = IsoKVError.Code(rawValue: "XX000")
}

/// An error on its way to the client: the engine's or server's ``IsoKVError`` plus the RFC 9457 extension members
/// that only the server knows (current version, the failing op, the transaction, the limit...).
///
/// Handlers throw `ServerError` (or a bare `IsoKVError`, or anything else); `ProblemMiddleware` turns every error
/// into a problem response through ``ErrorMapping``, the only place where codes become HTTP statuses.
public struct ServerError: Error, Sendable, CustomStringConvertible {
    public var error: IsoKVError
    /// The key's current version for `IK412` (nil: the key is absent, or it does not apply; the member is `null`).
    public var currentVersion: UInt64?
    /// Index of the failing op or compare in a batch.
    public var opIndex: Int?
    /// The interactive transaction id.
    public var transaction: String?
    /// `committed` / `rolled_back` / `unknown` for commit outcomes.
    public var outcome: String?
    /// The limit that was exceeded and the actual size (`54000`).
    public var limit: Int?
    public var actual: Int?
    /// A JSON Pointer to the offending field (`22023`, `22P02`).
    public var pointer: String?
    /// A point read with `wait=skip_locked` that skipped a locked row.
    public var skipped: Bool?
    /// Indexes of compares that failed (`POST /v1/txn` without a failure branch).
    public var failedCompares: [Int]?

    public init(_ error: IsoKVError) { self.error = error }

    public init(_ code: IsoKVError.Code, _ message: String, key: Bytes? = nil) {
        self.error = IsoKVError(code, message, key: key)
    }

    public var code: IsoKVError.Code { error.code }
    public var description: String { "\(error)" }

    static func invalid(_ message: String, pointer: String? = nil) -> ServerError {
        var e = ServerError(.invalidInput, message)
        e.pointer = pointer
        return e
    }

    static func badEncoding(_ message: String, pointer: String? = nil) -> ServerError {
        var e = ServerError(.invalidTextRepresentation, message)
        e.pointer = pointer
        return e
    }

    static func tooLarge(_ what: String, limit: Int, actual: Int, key: Bytes? = nil) -> ServerError {
        var e = ServerError(.limitExceeded, "\(what) of \(actual) exceeds the limit of \(limit)", key: key)
        e.limit = limit
        e.actual = actual
        return e
    }

    static func preconditionFailed(_ message: String, key: Bytes, current: UInt64?) -> ServerError {
        var e = ServerError(.versionMismatch, message, key: key)
        e.currentVersion = current
        return e
    }

    static func notFound(_ key: Bytes) -> ServerError {
        ServerError(.noData, "key not found", key: key)
    }
}
