import IsoKVCore
import PostgresNIO

/// Maps what postgres-nio throws to ``IsoKVError``, with the same codes as the embedded engine so that callers (and
/// `transaction { }`'s retry of `40001`/`40P01`) do not depend on the backend. The table is in DESIGN.md.
enum PostgresErrorMapping {
    /// SQLSTATEs whose IsoKV code differs from the SQLSTATE itself. Every other SQLSTATE is passed through as the code
    /// (IsoKV's codes are SQLSTATEs where PostgreSQL has one).
    static let renamed: [String: IsoKVError.Code] = [
        "22P02": .invalidInput,  // invalid_text_representation
        "54001": .limitExceeded,  // statement_too_complex
        "57P01": .connectionFailure,  // admin_shutdown: the server is stopping
        "57P02": .connectionFailure,  // crash_shutdown
        "57P03": .connectionFailure,  // cannot_connect_now: the server is starting or in recovery
        "53300": .connectionFailure,  // too_many_connections
        "08000": .connectionFailure, "08001": .connectionFailure, "08003": .connectionFailure,
        "08004": .connectionFailure, "08P01": .connectionFailure
    ]

    /// The IsoKV error for `error` thrown by a statement about `key` (nil when it is not about one key).
    /// Errors that are already ``IsoKVError`` and `CancellationError` pass through unchanged.
    static func map(_ error: any Error, key: Bytes? = nil) -> any Error {
        if error is IsoKVError || error is CancellationError { return error }
        if let psql = error as? PSQLError {
            if psql.code == .server, let state = psql.serverInfo?[.sqlState] {
                return server(
                    state: state, message: psql.serverInfo?[.message], detail: psql.serverInfo?[.detail], key: key)
            }
            switch psql.code {
            case .poolClosed, .clientClosedConnection:
                return IsoKVError(.databaseClosed, "the PostgreSQL store was shut down", key: key)
            case .queryCancelled:
                return CancellationError()
            default:
                return IsoKVError(.connectionFailure, "connection to PostgreSQL failed (\(psql.code))", key: key)
            }
        }
        // The future-based API (used for COMMIT, for its command tag) reports server errors in its older type.
        if case .server(let e) = error as? PostgresError, let state = e.fields[.sqlState] {
            return server(state: state, message: e.fields[.message], detail: e.fields[.detail], key: key)
        }
        if error is PostgresDecodingError {
            return IsoKVError(.init(rawValue: "XX000"), "unexpected column type from PostgreSQL: \(error)", key: key)
        }
        return IsoKVError(.connectionFailure, "PostgreSQL client error: \(String(reflecting: error))", key: key)
    }

    static func server(state: String, message: String?, detail: String?, key: Bytes?) -> IsoKVError {
        let code = renamed[state] ?? IsoKVError.Code(rawValue: state)
        return IsoKVError(code, (message ?? "PostgreSQL error \(state)") + (detail.map { " (\($0))" } ?? ""), key: key)
    }

    /// Whether `error` (already mapped) means the connection is unusable.
    static func isConnectionLoss(_ error: any Error) -> Bool {
        (error as? IsoKVError)?.code == .connectionFailure || (error as? IsoKVError)?.code == .databaseClosed
    }
}
