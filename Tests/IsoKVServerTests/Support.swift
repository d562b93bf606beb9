import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IsoKV
import IsoKVCore
@testable import IsoKVServer
import Testing

/// A server over `db` with small limits where a test needs them.
func makeServer(_ db: Database, _ configure: (inout ServerConfiguration) -> Void = { _ in }) throws -> IsoKVServer {
    var configuration = ServerConfiguration(port: 0)
    configure(&configuration)
    return try IsoKVServer(configuration: configuration, database: db, closeDatabase: false)
}

/// Runs `body` against a fresh in-memory store through the router (no sockets).
func withRouter(
    _ configure: (inout ServerConfiguration) -> Void = { _ in },
    _ body: @Sendable (any TestClientProtocol, Database, IsoKVServer) async throws -> Void
) async throws {
    let db = Database.inMemory()
    let server = try makeServer(db, configure)
    try await server.application.test(.router) { client in try await body(client, db, server) }
}

extension TestClientProtocol {
    /// A request with optional string body and headers given as pairs.
    @discardableResult
    func send(
        _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, headers: [(String, String)] = [],
        bytes: [UInt8]? = nil
    ) async throws -> TestResponse {
        var fields = HTTPFields()
        for (name, value) in headers { fields[HTTPField.Name(name)!] = value }
        let buffer: ByteBuffer? = bytes.map { ByteBuffer(bytes: $0) } ?? body.map { ByteBuffer(string: $0) }
        return try await execute(uri: uri, method: method, headers: fields, body: buffer) { $0 }
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) as? [String: Any]
            ?? [:]
    }
    func header(_ name: String) -> String? { headers[HTTPField.Name(name)!] }
}

/// Checks a problem response: status, content type, `code`, the standard members and `instance`.
@discardableResult
func expectProblem(
    _ r: TestResponse, _ status: HTTPResponse.Status, _ code: String,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [String: Any] {
    let j = r.json
    #expect(r.status == status, "status \(r.status) body \(r.text)", sourceLocation: sourceLocation)
    #expect(r.header("Content-Type") == "application/problem+json", sourceLocation: sourceLocation)
    #expect(j["code"] as? String == code, "code in \(r.text)", sourceLocation: sourceLocation)
    #expect(j["status"] as? Int == Int(status.code), sourceLocation: sourceLocation)
    #expect((j["instance"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
    #expect(j["type"] as? String == "https://isokv.dev/problems/\(code)", sourceLocation: sourceLocation)
    for member in ["retryable", "key", "current_version", "op_index", "txn", "outcome", "limit"] {
        #expect(j.keys.contains(member), "member \(member) missing in \(r.text)", sourceLocation: sourceLocation)
    }
    return j
}

/// Every committed key and value, the server's reserved keys included (for "nothing changed" checks).
func contents(_ db: Database) async throws -> [Bytes: Bytes] {
    try await db.transaction(.snapshot, readOnly: true) { tx in
        var out: [Bytes: Bytes] = [:]
        for kv in try await tx.scan(.all) { out[kv.key] = kv.value }
        return out
    }
}

/// Begins an interactive transaction over HTTP and returns its id.
func begin(_ client: any TestClientProtocol, _ body: String = "{}", sourceLocation: SourceLocation = #_sourceLocation)
    async throws -> String
{
    let r = try await client.send(.post, "/v1/transactions", body)
    #expect(r.status == .created, "begin: \(r.text)", sourceLocation: sourceLocation)
    return r.json["id"] as? String ?? "missing"
}

/// Polls until `condition` holds (at most `seconds`; wide, because the whole suite runs in parallel on two cores and
/// a task may wait seconds for a thread), suspending between tries.
func eventually(_ seconds: Double = 60, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
