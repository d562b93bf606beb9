import IsoKVCore

extension IsoKVError.Code {
    /// `08006`: the connection to PostgreSQL was lost, or no connection could be made within
    /// ``PostgresStore/Configuration/connectionTimeout``. Not retryable by ``KeyValueStore/transaction(_:readOnly:retry:_:)``:
    /// if it interrupted a commit or a single-key write, that write may or may not have happened (read the key to
    /// find out). The pool opens new connections once the server is back, so a later call can succeed.
    ///
    /// ```swift
    /// do { try await store.put("k", "v") }
    /// catch IsoKVError.Code.connectionFailure { /* PostgreSQL unreachable: retry later, then check "k" */ }
    /// ```
    public static let connectionFailure = IsoKVError.Code(rawValue: "08006")
}
