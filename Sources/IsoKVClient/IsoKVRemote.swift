import AsyncHTTPClient
import Foundation
import IsoKVCore
import NIOCore
import NIOHTTP1

/// The store contract over HTTP: an `isokv serve` server used as a `KeyValueStore`, so that code written against
/// the contract runs unchanged against a server.
///
/// ```swift
/// let store = IsoKVRemote(url: "http://127.0.0.1:7070", token: nil)
/// try await store.transaction(.snapshot) { tx in
///     let n = try await tx.get("counter")?.int64 ?? 0
///     try await tx.put("counter", Bytes(n + 1))
/// }
/// let v = try await store.get("counter")          // value and version (the ETag)
/// ```
///
/// Single-key operations are one request each: `/v1/kv/{key}` with ETags for keys that travel verbatim in a URL
/// path, `POST /v1/txn` (compare + op, `key_b64`) for any other bytes. Transactions are the server's interactive
/// transactions (`/v1/transactions/{id}`): a handle holds the id, and every operation is one request. Errors
/// arrive as the same `IsoKVError` codes (from the problem body's `code`), so `transaction { }` retries
/// `40001`/`40P01` as it does in process.
///
/// Where HTTP differs from the embedded engine (the capabilities a conformance run must declare):
/// - after any failed operation the server fails the whole transaction (PostgreSQL semantics): later operations
///   throw `25P02`, where the engine keeps the transaction usable after a non-retryable error such as `23505`;
/// - savepoints are the server's savepoint routes; rolling back to one also revives a failed transaction;
/// - the server's limits apply (scan pages of at most 1000 rows are fetched one after the other; writes per
///   interactive transaction are capped) and an idle transaction is rolled back after its idle timeout (`25P03`);
/// - a transaction waiting for a row lock occupies an HTTP connection: with more concurrently blocked
///   transactions than the client's connections per host (AsyncHTTPClient's default is 8), the holder's commit
///   can wait for a connection until the holder's idle timeout. Pass an `HTTPClient` with a larger pool for such
///   loads;
/// - `TransactionID`s are local to this client (the server names transactions by opaque ids).
public final class IsoKVRemote: KeyValueStore, Sendable {
    public typealias Transaction = RemoteTransaction

    let http: RemoteHTTP

    /// `url`: the server's base URL (`http://host:port`); `token`: the bearer token, if the server has one.
    public init(url: String, token: String? = nil, client: HTTPClient = .shared) {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        http = RemoteHTTP(base: base, token: token, client: client)
    }

    nonisolated(nonsending) public func begin(_ isolation: IsolationLevel, readOnly: Bool) async throws
        -> RemoteTransaction
    {
        try await begin(isolation, readOnly: readOnly, deferrable: false)
    }

    /// Begins a transaction; `deferrable` only with `.serializable` and `readOnly` (the server refuses it otherwise).
    nonisolated(nonsending) public func begin(_ isolation: IsolationLevel, readOnly: Bool, deferrable: Bool)
        async throws
        -> RemoteTransaction
    {
        let body: [String: Any] = [
            "isolation": Self.wireName(isolation), "read_only": readOnly, "deferrable": deferrable
        ]
        let r = try await http.send(.POST, "/v1/transactions", json: body)
        guard let id = r.json["id"] as? String else { throw RemoteHTTP.protocolError("begin returned no id") }
        return RemoteTransaction(http: http, id: id, isolation: isolation, readOnly: readOnly)
    }

    static func wireName(_ level: IsolationLevel) -> String {
        switch level {
        case .readUncommitted: "read_uncommitted"
        case .readCommitted: "read_committed"
        case .snapshot: "snapshot"
        case .serializable: "serializable"
        }
    }

    nonisolated(nonsending) public func get(_ key: Bytes) async throws -> VersionedValue? {
        if let path = RemoteHTTP.plainPath(key) {
            let r = try await http.send(.GET, "/v1/kv/" + path, allow: [404])
            if r.status == 404 { return nil }
            return VersionedValue(value: Bytes(r.body), version: try r.etagVersion())
        }
        let result = try await batch(compare: nil, op: ["op": "get", "key_b64": RemoteHTTP.b64(key)])
        guard result["found"] as? Bool == true else { return nil }
        guard let version = (result["version"] as? NSNumber)?.uint64Value else {
            throw RemoteHTTP.protocolError("get without a version")
        }
        return VersionedValue(value: try RemoteHTTP.bytes(result, "value"), version: version)
    }

    @discardableResult
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes) async throws -> UInt64 {
        try await write(key, value, precondition: nil)
    }

    @discardableResult
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes, ifVersion version: UInt64) async throws
        -> UInt64
    {
        try await write(key, value, precondition: .version(version))
    }

    @discardableResult
    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes, ifAbsent: Bool) async throws -> UInt64 {
        guard ifAbsent else { return try await put(key, value) }
        do {
            return try await write(key, value, precondition: .absent)
        } catch let e as IsoKVError where e.code == .versionMismatch {
            // HTTP says 412 for a failed If-None-Match; the contract says 23505 for "the key exists".
            throw IsoKVError(.uniqueViolation, "key exists", key: key)
        }
    }

    @discardableResult
    nonisolated(nonsending) public func delete(_ key: Bytes) async throws -> Bool {
        if let path = RemoteHTTP.plainPath(key) {
            return try await http.send(.DELETE, "/v1/kv/" + path, allow: [404]).status == 204
        }
        let result = try await batch(compare: nil, op: ["op": "delete", "key_b64": RemoteHTTP.b64(key)])
        return result["deleted"] as? Bool ?? false
    }

    nonisolated(nonsending) public func delete(_ key: Bytes, ifVersion version: UInt64) async throws {
        if let path = RemoteHTTP.plainPath(key) {
            _ = try await http.send(.DELETE, "/v1/kv/" + path, headers: [("If-Match", "\"\(version)\"")])
            return
        }
        _ = try await batch(
            compare: ["key_b64": RemoteHTTP.b64(key), "version": version],
            op: ["op": "delete", "key_b64": RemoteHTTP.b64(key)])
    }

    @discardableResult
    nonisolated(nonsending) public func increment(_ key: Bytes, by delta: Int64) async throws -> Int64 {
        do {
            let text: String?
            if let path = RemoteHTTP.plainPath(key) {
                text = try await http.send(.POST, "/v1/incr/" + path, json: ["delta": delta]).json["value"] as? String
            } else {
                let result = try await batch(
                    compare: nil, op: ["op": "incr", "key_b64": RemoteHTTP.b64(key), "delta": delta])
                text = (try? RemoteHTTP.bytes(result, "value"))?.string
            }
            guard let text, let n = Int64(text) else { throw RemoteHTTP.protocolError("incr returned no value") }
            return n
        } catch let e as IsoKVError where e.code.rawValue == "42804" {
            // The server's datatype_mismatch is the contract's 22023 for "not a decimal integer".
            throw IsoKVError(.invalidInput, e.message, key: key)
        }
    }

    enum Precondition { case version(UInt64), absent }

    nonisolated(nonsending) private func write(_ key: Bytes, _ value: Bytes, precondition: Precondition?) async throws
        -> UInt64
    {
        if let path = RemoteHTTP.plainPath(key) {
            var headers: [(String, String)] = []
            switch precondition {
            case .version(let v): headers.append(("If-Match", "\"\(v)\""))
            case .absent: headers.append(("If-None-Match", "*"))
            case nil: break
            }
            return try await http.send(.PUT, "/v1/kv/" + path, body: value.bytes, headers: headers).etagVersion()
        }
        var compare: [String: Any]?
        switch precondition {
        case .version(let v): compare = ["key_b64": RemoteHTTP.b64(key), "version": v]
        case .absent: compare = ["key_b64": RemoteHTTP.b64(key), "exists": false]
        case nil: break
        }
        let result = try await batch(
            compare: compare,
            op: [
                "op": "put", "key_b64": RemoteHTTP.b64(key),
                "value_b64": RemoteHTTP.b64(value)
            ])
        guard let version = (result["version"] as? NSNumber)?.uint64Value else {
            throw RemoteHTTP.protocolError("put without a version")
        }
        return version
    }

    /// `POST /v1/txn` with at most one compare (a failed one is `IK412`) and one op; returns the op's result.
    nonisolated(nonsending) private func batch(compare: [String: Any]?, op: [String: Any]) async throws -> [String: Any]
    {
        var body: [String: Any] = ["success": [op]]
        if let compare { body["compare"] = [compare] }
        let r = try await http.send(.POST, "/v1/txn?encoding=b64", json: body)
        guard let result = (r.json["results"] as? [[String: Any]])?.first else {
            throw RemoteHTTP.protocolError("no result")
        }
        return result
    }
}
