import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IsoKV
import IsoKVCore
@testable import IsoKVServer
import Testing

/// One bad request and the problem it must get.
struct BadInput: Sendable, CustomTestStringConvertible {
    var name: String
    var method: HTTPRequest.Method
    var uri: String
    var body: String?
    var bytes: [UInt8]?
    var headers: [(String, String)] = []
    var status: HTTPResponse.Status
    var code: String

    var testDescription: String { name }

    init(
        _ name: String, _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, bytes: [UInt8]? = nil,
        headers: [(String, String)] = [], _ status: HTTPResponse.Status, _ code: String
    ) {
        self.name = name
        self.method = method
        self.uri = uri
        self.body = body
        self.bytes = bytes
        self.headers = headers
        self.status = status
        self.code = code
    }
}

/// Small limits so that the oversize cases stay small.
func smallLimits(_ c: inout ServerConfiguration) {
    c.limits.maxKeyBytes = 16
    c.limits.maxValueBytes = 64
    c.limits.maxBodyBytes = 256
    c.limits.maxOps = 3
}

let longKey = String(repeating: "k", count: 17)
let badInputs: [BadInput] = [
    BadInput("malformed JSON in a batch", .post, "/v1/txn", #"{"success": [ {"op": "put""#, .badRequest, "22P02"),
    BadInput("JSON of the wrong type", .post, "/v1/txn", #"{"success": {"op": "put"}}"#, .badRequest, "22P02"),
    BadInput("empty batch body", .post, "/v1/txn", "", .badRequest, "22P02"),
    BadInput(
        "both key and key_b64", .post, "/v1/txn",
        #"{"success": [{"op": "put", "key": "a", "key_b64": "YQ==", "value": "1"}]}"#, .badRequest, "22023"),
    BadInput(
        "neither key nor key_b64", .post, "/v1/txn", #"{"success": [{"op": "put", "value": "1"}]}"#, .badRequest,
        "22023"),
    BadInput(
        "bad base64 key", .post, "/v1/txn", #"{"success": [{"op": "put", "key_b64": "!!notbase64", "value": "1"}]}"#,
        .badRequest, "22P02"),
    BadInput(
        "bad base64 value", .post, "/v1/txn", #"{"success": [{"op": "put", "key": "a", "value_b64": "abc"}]}"#,
        .badRequest, "22P02"),
    BadInput("unknown op", .post, "/v1/txn", #"{"success": [{"op": "frobnicate", "key": "a"}]}"#, .badRequest, "22023"),
    BadInput(
        "key written twice", .post, "/v1/txn",
        #"{"success": [{"op": "put", "key": "a", "value": "1"}, {"op": "delete", "key": "a"}]}"#, .badRequest, "22023"),
    BadInput(
        "compare with two tests", .post, "/v1/txn",
        #"{"compare": [{"key": "a", "exists": true, "version": 3}], "success": []}"#, .badRequest, "22023"),
    BadInput(
        "range compare", .post, "/v1/txn", #"{"compare": [{"prefix": "a", "max_version": 3}], "success": []}"#,
        .badRequest, "22023"),
    BadInput(
        "too many ops", .post, "/v1/txn",
        #"{"success": [{"op": "get", "key": "a"}, {"op": "get", "key": "b"}, {"op": "get", "key": "c"}, {"op": "get", "key": "d"}]}"#,
        .contentTooLarge, "54000"),
    BadInput(
        "oversize key in JSON", .post, "/v1/txn", #"{"success": [{"op": "put", "key": "\#(longKey)", "value": "1"}]}"#,
        .contentTooLarge, "54000"),
    BadInput(
        "oversize value in JSON", .post, "/v1/txn",
        #"{"success": [{"op": "put", "key": "a", "value": "\#(String(repeating: "v", count: 65))"}]}"#,
        .contentTooLarge, "54000"),
    BadInput("oversize body", .post, "/v1/txn", String(repeating: " ", count: 300) + "{}", .contentTooLarge, "54000"),
    BadInput("oversize key in the URL", .put, "/v1/kv/\(longKey)", "1", .uriTooLong, "IK414"),
    BadInput("oversize value in a PUT", .put, "/v1/kv/a", String(repeating: "v", count: 65), .contentTooLarge, "54000"),
    BadInput("oversize PUT body", .put, "/v1/kv/a", String(repeating: "v", count: 300), .contentTooLarge, "54000"),
    BadInput("bad percent-escape", .put, "/v1/kv/a%zz", "1", .badRequest, "22023"),
    BadInput("truncated percent-escape", .put, "/v1/kv/a%4", "1", .badRequest, "22023"),
    BadInput("doubled slash in the key", .put, "/v1/kv/a//b", "1", .badRequest, "22023"),
    BadInput("dot-dot segment", .put, "/v1/kv/a/../b", "1", .badRequest, "22023"),
    BadInput("reserved key", .put, "/v1/kv/%FF%FFx", "1", .badRequest, "22023"),
    BadInput("garbage If-Match", .put, "/v1/kv/a", "1", headers: [("If-Match", "\"abc\"")], .badRequest, "22023"),
    BadInput(
        "empty If-Match list member", .put, "/v1/kv/a", "1", headers: [("If-Match", "\"1\",,")], .badRequest, "22023"),
    BadInput("malformed weak tag", .put, "/v1/kv/a", "1", headers: [("If-Match", "W/1")], .badRequest, "22023"),
    BadInput(
        "weak If-Match never matches", .put, "/v1/kv/a", "1", headers: [("If-Match", "W/\"1\"")], .preconditionFailed,
        "IK412"),
    BadInput(
        "stale If-Match on delete", .delete, "/v1/kv/a", headers: [("If-Match", "\"999999\"")], .preconditionFailed,
        "IK412"),
    BadInput(
        "stale If-Match on GET", .get, "/v1/kv/a", headers: [("If-Match", "\"999999\"")], .preconditionFailed, "IK412"),
    BadInput("incr with bad JSON", .post, "/v1/incr/n", #"{"delta": "one"}"#, .badRequest, "22P02"),
    BadInput("unknown isolation", .post, "/v1/transactions", #"{"isolation": "chaos"}"#, .badRequest, "22023"),
    BadInput(
        "deferrable read-write", .post, "/v1/transactions", #"{"isolation": "serializable", "deferrable": true}"#,
        .badRequest, "22023"),
    BadInput(
        "idle timeout out of range", .post, "/v1/transactions", #"{"idle_timeout_ms": 999999999}"#, .badRequest, "22023"
    ),
    BadInput("lock timeout", .post, "/v1/transactions", #"{"lock_timeout_ms": 10}"#, .badRequest, "22023"),
    BadInput(
        "unknown transaction", .post, "/v1/transactions/AAAAAAAAAAAAAAAAAAAAAA/ops", #"{"ops": []}"#, .notFound, "25P01"
    ),
    BadInput("malformed transaction id", .post, "/v1/transactions/nope/commit", nil, .notFound, "25P01"),
    BadInput("scan with prefix and start", .get, "/v1/kv?prefix=a&start=b", nil, .badRequest, "22023"),
    BadInput("scan limit too large", .get, "/v1/kv?limit=5000", nil, .badRequest, "22023"),
    BadInput("scan with bad base64", .get, "/v1/kv?prefix_b64=%21%21", nil, .badRequest, "22P02"),
    BadInput("scan with a garbage cursor", .get, "/v1/kv?cursor=garbage", nil, .badRequest, "22023"),
    BadInput("scan with an unknown cursor", .get, "/v1/kv?cursor=AAAAAAAAAAAAAAAAAAAAAA.YQ", nil, .gone, "72000"),
    BadInput("scan at a revision", .get, "/v1/kv?revision=3", nil, .badRequest, "22023"),
    BadInput("bad percent-escape in the query", .get, "/v1/kv?prefix=%G1", nil, .badRequest, "22023"),
    BadInput("claim without prefix", .post, "/v1/queues/claim", #"{"max": 1}"#, .badRequest, "22023"),
    BadInput("claim too many", .post, "/v1/queues/claim", #"{"prefix": "j/", "max": 1000}"#, .badRequest, "22023"),
    BadInput("ack without receipt", .post, "/v1/queues/ack", #"{"key": "a"}"#, .badRequest, "22023"),
    BadInput(
        "ack with a foreign receipt", .post, "/v1/queues/ack", #"{"key": "a", "receipt": "xyz"}"#, .badRequest, "22023")
]

@Suite("Server bad inputs")
struct BadInputTests {
    @Test(arguments: badInputs)
    func badInputGetsItsProblemAndChangesNothing(_ input: BadInput) async throws {
        try await withRouter(smallLimits) { client, db, _ in
            _ = try await db.put("a", "1")
            _ = try await db.put("b", "2")
            let before = try await contents(db)
            let r = try await client.send(
                input.method, input.uri, input.body, headers: input.headers, bytes: input.bytes)
            let problem = expectProblem(r, input.status, input.code)
            if input.code == "54000" {
                #expect(problem["limit"] as? Int != nil, "the limit is named")
                #expect(problem["actual"] as? Int ?? 0 > problem["limit"] as? Int ?? 0)
            }
            #expect(try await contents(db) == before, "the store changed")
            #expect(try await client.send(.get, "/healthz").status == .ok)
        }
    }

    @Test func missingOrWrongTokenIs401AndChangesNothing() async throws {
        try await withRouter({ $0.token = "s3cret" }) { client, db, _ in
            _ = try await db.put("a", "1")
            let before = try await contents(db)
            for headers in [
                [], [("Authorization", "Bearer wrong")], [("Authorization", "Bearer s3cre")],
                [("Authorization", "Basic czNjcmV0")], [("Authorization", "Bearer s3cret2")]
            ] {
                let r = try await client.send(.put, "/v1/kv/a", "2", headers: headers)
                expectProblem(r, .unauthorized, "28000")
                #expect(r.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
                expectProblem(try await client.send(.get, "/metrics", headers: headers), .unauthorized, "28000")
            }
            #expect(try await contents(db) == before)
            #expect(try await client.send(.get, "/healthz").status == .ok)
            #expect(try await client.send(.get, "/readyz").status == .ok)
            let ok = try await client.send(.put, "/v1/kv/a", "2", headers: [("Authorization", "Bearer s3cret")])
            #expect(ok.status == .ok)
        }
    }

    @Test func constantTimeCompareIsExact() {
        #expect(BearerAuthMiddleware.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!BearerAuthMiddleware.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!BearerAuthMiddleware.constantTimeEqual(Array("abc".utf8), Array("ab".utf8)))
        #expect(!BearerAuthMiddleware.constantTimeEqual([], Array("a".utf8)))
        // Lengths differing by a multiple of 256 must not compare equal.
        #expect(!BearerAuthMiddleware.constantTimeEqual([], [UInt8](repeating: 0, count: 256)))
    }
}
