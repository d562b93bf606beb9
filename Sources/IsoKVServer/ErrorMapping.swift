import Foundation
import HTTPTypes
import Hummingbird
import IsoKVCore

/// The one place where an error becomes HTTP: the code → status table of DESIGN.md ("Error mapping"), whether a
/// client may retry, and the RFC 9457 `application/problem+json` body.
///
/// `retryable: true` means "restart the whole transaction (or resend this one-shot request) with backoff"; a
/// version mismatch (`IK412`) never is: re-reading, not retrying, is the answer.
public enum ErrorMapping {
    /// Status, retryability and title for every code the server can return. Unknown codes are 500.
    public static func status(for code: IsoKVError.Code) -> (
        status: HTTPResponse.Status, retryable: Bool, title: String
    ) {
        switch code {
        case .serializationFailure: (.conflict, true, "Serialization failure")
        case .deadlockDetected: (.conflict, true, "Deadlock detected")
        case .lockNotAvailable: (.conflict, true, "Lock not available")
        case .uniqueViolation: (.conflict, false, "Key exists")
        case .transactionAborted: (.conflict, false, "Transaction is aborted")
        case .readOnlyTransaction: (.conflict, false, "Read-only transaction")
        case .objectInUse: (.conflict, false, "Transaction busy")
        case .numericOutOfRange: (.conflict, false, "Counter overflow")
        case .datatypeMismatch: (.conflict, false, "Stored value is not an integer")
        case .invalidSavepoint: (.conflict, false, "Invalid savepoint")
        case .versionMismatch: (.preconditionFailed, false, "Precondition failed")
        case .limitExceeded: (.contentTooLarge, false, "Limit exceeded")
        case .uriTooLong: (.uriTooLong, false, "URI too long")
        case .invalidInput: (.badRequest, false, "Invalid parameter value")
        case .invalidTextRepresentation: (.badRequest, false, "Malformed request")
        case .noData: (.notFound, false, "Not found")
        case .noActiveTransaction: (.notFound, false, "No such transaction")
        case .noSuchRoute: (.notFound, false, "No such route")
        case .methodNotAllowed: (.methodNotAllowed, false, "Method not allowed")
        case .idleTimeout: (.gone, true, "Transaction idle timeout")
        case .transactionTimeout: (.gone, true, "Transaction timeout")
        case .snapshotTooOld: (.gone, true, "Snapshot too old")
        case .databaseClosed: (.serviceUnavailable, true, "Shutting down")
        case .tooManyTransactions: (.serviceUnavailable, true, "Too many open transactions")
        case .invalidAuthorization: (.unauthorized, false, "Unauthorized")
        case .storageFailure: (.internalServerError, false, "Storage failure")
        default: (.internalServerError, false, "Internal error")
        }
    }

    /// Any error, as the server reports it. `IsoKVError`s keep their code; a body decoding failure is `22P02`;
    /// anything unexpected is `XX000` (500; the caller logs it with the request id).
    public static func serverError(from error: any Error) -> ServerError {
        switch error {
        case let e as ServerError: return e
        case let e as IsoKVError: return ServerError(e)
        case is DecodingError: return .badEncoding("the body is not valid JSON of the expected shape: \(error)")
        case is CancellationError:
            return ServerError(.databaseClosed, "the request was cancelled (the server is stopping)")
        case let e as HTTPError where e.status == .notFound: return ServerError(.noSuchRoute, "no such route")
        case let e as HTTPError where e.status == .methodNotAllowed:
            return ServerError(.methodNotAllowed, "method not allowed on this route")
        case let e as HTTPError where e.status == .contentTooLarge:
            return ServerError(.limitExceeded, "request body too large")
        case let e as any HTTPResponseError where e.status.kind == .clientError:
            return ServerError(.invalidInput, "\(error)")
        default: return ServerError(.internalError, "internal error")
        }
    }

    /// The problem response for `error` (the request id becomes `instance`).
    public static func response(for error: ServerError, requestID: String) -> Response {
        let (status, retryable, title) = status(for: error.code)
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        if retryable, status == .serviceUnavailable || status == .conflict { headers[.retryAfter] = "1" }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"isokv\"" }
        if error.code == .versionMismatch, let v = error.currentVersion { headers[.eTag] = ETag.format(v) }
        if error.code == .databaseClosed { headers[.connection] = "close" }
        let keyFields = KeyText.fields(error.error.key, name: "key", forceBase64: false)
        let body = JSONValue.object(
            [
                ("type", .string("https://isokv.dev/problems/\(error.code.rawValue)")),
                ("title", .string(title)),
                ("status", .int(Int64(status.code))),
                ("detail", .string(error.error.message)),
                ("instance", .string(requestID)),
                ("code", .string(error.code.rawValue)),
                ("retryable", .bool(retryable))
            ] + keyFields + [
                ("current_version", .optional(error.currentVersion)),
                ("op_index", .optional(error.opIndex)),
                ("txn", .optional(error.transaction)),
                ("outcome", .optional(error.outcome)),
                ("limit", .optional(error.limit)),
                ("actual", .optional(error.actual)),
                ("pointer", .optional(error.pointer)),
                ("skipped", .optional(error.skipped)),
                ("failed_compares", error.failedCompares.map { .array($0.map { .int(Int64($0)) }) } ?? .null),
                ("other_transaction", .optional(error.error.otherTransaction?.rawValue))
            ])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body.serialized())))
    }
}
