import Foundation
import IsoKVCore
import NIOHTTP1
import Synchronization

/// A transaction on the server (`/v1/transactions/{id}`). Not `Sendable`, like every transaction handle: use it
/// from the task that began it. Each operation is one request; the server runs them in order in the
/// transaction's owner task. Dropping the handle without commit or rollback rolls it back (a request is sent; the
/// server's idle timeout would do it anyway).
public final class RemoteTransaction: StoreTransaction {
    let http: RemoteHTTP
    /// The server's id of this transaction.
    public let serverID: String
    public let id: TransactionID
    public let isolation: IsolationLevel
    public let isReadOnly: Bool
    private var ended = false

    private static let nextLocalID = Atomic<UInt64>(1)

    init(http: RemoteHTTP, id: String, isolation: IsolationLevel, readOnly: Bool) {
        self.http = http
        self.serverID = id
        self.id = TransactionID(rawValue: Self.nextLocalID.wrappingAdd(1, ordering: .relaxed).oldValue)
        self.isolation = isolation
        self.isReadOnly = readOnly
    }

    deinit {
        guard !ended else { return }
        let http = self.http, path = "/v1/transactions/\(serverID)/rollback"
        Task.detached { _ = try? await http.send(.POST, path) }
    }

    private var base: String { "/v1/transactions/\(serverID)" }

    nonisolated(nonsending) public func get(_ key: Bytes) async throws -> Bytes? {
        guard let path = RemoteHTTP.plainPath(key) else {
            let result = try await ops([["op": "get", "key_b64": RemoteHTTP.b64(key)]]).first ?? [:]
            return result["found"] as? Bool == true ? try RemoteHTTP.bytes(result, "value") : nil
        }
        let r = try await http.send(.GET, base + "/kv/" + path, allow: [404])
        return r.status == 404 ? nil : Bytes(r.body)
    }

    nonisolated(nonsending) public func put(_ key: Bytes, _ value: Bytes) async throws {
        guard let path = RemoteHTTP.plainPath(key) else {
            _ = try await ops([["op": "put", "key_b64": RemoteHTTP.b64(key), "value_b64": RemoteHTTP.b64(value)]])
            return
        }
        _ = try await http.send(.PUT, base + "/kv/" + path, body: value.bytes)
    }

    nonisolated(nonsending) public func insert(_ key: Bytes, _ value: Bytes) async throws {
        _ = try await ops([["op": "create", "key_b64": RemoteHTTP.b64(key), "value_b64": RemoteHTTP.b64(value)]])
    }

    @discardableResult
    nonisolated(nonsending) public func delete(_ key: Bytes) async throws -> Bool {
        guard let path = RemoteHTTP.plainPath(key) else {
            let result = try await ops([["op": "delete", "key_b64": RemoteHTTP.b64(key)]]).first ?? [:]
            return result["deleted"] as? Bool ?? false
        }
        let r = try await http.send(.DELETE, base + "/kv/" + path, allow: [404])
        return r.status == 204
    }

    nonisolated(nonsending) public func scan(
        _ range: KeyRange, limit: Int?, reverse: Bool, lock: RowLockMode?, wait: LockWait
    )
        async throws -> [KeyValue]
    {
        if let limit, limit < 0 { throw IsoKVError(.invalidInput, "scan limit \(limit) is negative") }
        var out: [KeyValue] = []
        var remaining = limit ?? Int.max
        var page = range
        while remaining > 0 {
            var op: [String: Any] = ["op": "scan", "limit": min(remaining, 1000), "reverse": reverse]
            if let lower = page.lower { op["start_b64"] = RemoteHTTP.b64(lower) }
            if let upper = page.upper { op["end_b64"] = RemoteHTTP.b64(upper) }
            if let lock { op["lock"] = lock == .forUpdate ? "for_update" : "for_share" }
            if lock != nil || wait != .block { op["wait"] = Self.wireName(wait) }
            let results = try await ops([op])
            let items = results.first?["items"] as? [[String: Any]] ?? []
            for item in items {
                out.append(KeyValue(key: try RemoteHTTP.bytes(item, "key"), value: try RemoteHTTP.bytes(item, "value")))
            }
            remaining -= items.count
            guard results.first?["more"] as? Bool == true, let last = out.last?.key else { break }
            if reverse { page.upper = last } else { page.lower = Bytes(last.bytes + [0]) }
        }
        return out
    }

    static func wireName(_ wait: LockWait) -> String {
        switch wait {
        case .block: "block"
        case .noWait: "nowait"
        case .skipLocked: "skip_locked"
        }
    }

    @discardableResult
    nonisolated(nonsending) public func lock(_ key: Bytes, _ mode: RowLockMode, wait: LockWait) async throws -> Bytes? {
        let result =
            try await ops([
                [
                    "op": "get", "key_b64": RemoteHTTP.b64(key),
                    "lock": mode == .forUpdate ? "for_update" : "for_share", "wait": Self.wireName(wait)
                ]
            ]).first ?? [:]
        return result["found"] as? Bool == true ? try RemoteHTTP.bytes(result, "value") : nil
    }

    /// `POST …/savepoints`.
    nonisolated(nonsending) public func savepoint() async throws -> Savepoint {
        let r = try await http.send(.POST, base + "/savepoints")
        guard let n = r.json["savepoint"] as? Int else { throw RemoteHTTP.protocolError("savepoint without a number") }
        return Savepoint(transaction: id, id: n)
    }

    /// `POST …/savepoints/{n}/rollback`.
    nonisolated(nonsending) public func rollback(to savepoint: Savepoint) async throws {
        guard savepoint.transaction == id else {
            throw IsoKVError(.invalidSavepoint, "the savepoint belongs to another transaction")
        }
        _ = try await http.send(.POST, base + "/savepoints/\(savepoint.id)/rollback")
    }

    /// `DELETE …/savepoints/{n}`.
    nonisolated(nonsending) public func release(_ savepoint: Savepoint) async throws {
        guard savepoint.transaction == id else {
            throw IsoKVError(.invalidSavepoint, "the savepoint belongs to another transaction")
        }
        _ = try await http.send(.DELETE, base + "/savepoints/\(savepoint.id)")
    }

    nonisolated(nonsending) public func commit() async throws {
        do {
            _ = try await http.send(.POST, base + "/commit")
            ended = true
        } catch let e as IsoKVError {
            // Every answer but a transport failure ends the transaction on the server.
            ended = true
            throw e
        }
    }

    nonisolated(nonsending) public func rollback() async throws {
        _ = try await http.send(.POST, base + "/rollback")
        ended = true
    }

    /// `POST …/ops` with one batch; returns the results.
    nonisolated(nonsending) private func ops(_ ops: [[String: Any]]) async throws -> [[String: Any]] {
        let r = try await http.send(.POST, base + "/ops?encoding=b64", json: ["ops": ops])
        return r.json["results"] as? [[String: Any]] ?? []
    }
}
