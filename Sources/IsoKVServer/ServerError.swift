import IsoKVCore

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
