import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IsoKV
import IsoKVCore
@testable import IsoKVServer
import Testing

@Suite("Server single-key routes")
struct KVRouteTests {
    @Test func putGetHeadDeleteWithETags() async throws {
        try await withRouter { client, db, _ in
            var r = try await client.send(.put, "/v1/kv/app/users/7", "ada")
            #expect(r.status == .created)
            let etag1 = try #require(r.header("ETag"))
            #expect(r.json["version"] as? Int == Int(etag1.dropFirst().dropLast()))
            #expect(r.header("IsoKV-Revision") != nil)
            #expect(try await db.get("app/users/7")?.value == "ada")

            r = try await client.send(.get, "/v1/kv/app/users/7")
            #expect(r.status == .ok)
            #expect(r.text == "ada")
            #expect(r.header("ETag") == etag1)
            #expect(r.header("Content-Type") == "application/octet-stream")
            #expect(r.header("X-Content-Type-Options") == "nosniff")

            r = try await client.send(.head, "/v1/kv/app/users/7")
            #expect(r.status == .ok)
            #expect(r.header("ETag") == etag1)
            #expect(r.body.readableBytes == 0)

            r = try await client.send(.get, "/v1/kv/app/users/7", headers: [("Accept", "application/json")])
            #expect(r.json["value"] as? String == "ada")
            #expect(r.json["key"] as? String == "app/users/7")
            #expect(r.json.keys.contains("value_b64"))

            r = try await client.send(.get, "/v1/kv/app/users/7", headers: [("If-None-Match", etag1)])
            #expect(r.status == .notModified)
            r = try await client.send(.get, "/v1/kv/app/users/7", headers: [("If-None-Match", "\"1\", W/\(etag1)")])
            #expect(r.status == .notModified)  // weak comparison for If-None-Match
            r = try await client.send(.get, "/v1/kv/app/users/7", headers: [("If-Match", etag1)])
            #expect(r.status == .ok)

            r = try await client.send(.put, "/v1/kv/app/users/7", "grace", headers: [("If-Match", etag1)])
            #expect(r.status == .ok)
            let etag2 = try #require(r.header("ETag"))
            #expect(etag2 != etag1)

            // A stale ETag: 412 with the current one, nothing written.
            r = try await client.send(.put, "/v1/kv/app/users/7", "lost", headers: [("If-Match", etag1)])
            let p = expectProblem(r, .preconditionFailed, "IK412")
            #expect(r.header("ETag") == etag2)
            #expect(p["current_version"] as? Int == Int(etag2.dropFirst().dropLast()))
            #expect(p["retryable"] as? Bool == false)
            #expect(try await db.get("app/users/7")?.value == "grace")

            // Comma list (OR), unquoted tag accepted.
            r = try await client.send(
                .put, "/v1/kv/app/users/7", "list", headers: [("If-Match", "\(etag1), \(etag2.dropFirst().dropLast())")]
            )
            #expect(r.status == .ok)

            r = try await client.send(.delete, "/v1/kv/app/users/7", headers: [("If-Match", etag1)])
            expectProblem(r, .preconditionFailed, "IK412")
            r = try await client.send(.delete, "/v1/kv/app/users/7")
            #expect(r.status == .noContent)
            #expect(try await db.get("app/users/7") == nil)
            r = try await client.send(.get, "/v1/kv/app/users/7")
            expectProblem(r, .notFound, "02000")
            r = try await client.send(.delete, "/v1/kv/app/users/7")
            expectProblem(r, .notFound, "02000")
        }
    }

    @Test func createOnlyAndStarPreconditions() async throws {
        try await withRouter { client, db, _ in
            var r = try await client.send(.put, "/v1/kv/k", "1", headers: [("If-Match", "*")])
            expectProblem(r, .preconditionFailed, "IK412")
            #expect(try await db.get("k") == nil)
            r = try await client.send(.put, "/v1/kv/k", "1", headers: [("If-None-Match", "*")])
            #expect(r.status == .created)
            r = try await client.send(.put, "/v1/kv/k", "2", headers: [("If-None-Match", "*")])
            let p = expectProblem(r, .preconditionFailed, "IK412")
            #expect(p["current_version"] as? Int != nil)
            #expect(try await db.get("k")?.value == "1")
            r = try await client.send(.put, "/v1/kv/k", "3", headers: [("If-Match", "*")])
            #expect(r.status == .ok)
            // A weak tag never matches If-Match.
            let v = try #require(try await db.get("k")?.version)
            r = try await client.send(.put, "/v1/kv/k", "4", headers: [("If-Match", "W/\"\(v)\"")])
            expectProblem(r, .preconditionFailed, "IK412")
            #expect(try await db.get("k")?.value == "3")
        }
    }

    @Test func binaryKeysAndValuesArePercentEncodedBytes() async throws {
        try await withRouter { client, db, _ in
            let value: [UInt8] = [0, 1, 2, 0xFF, 0xFE]
            var r = try await client.send(.put, "/v1/kv/a%2Fb%00%FF", bytes: value)
            #expect(r.status == .created)
            #expect(try await db.get(Bytes([0x61, 0x2F, 0x62, 0x00, 0xFF]))?.value == Bytes(value))
            r = try await client.send(.get, "/v1/kv/a%2Fb%00%FF")
            #expect(Array(r.body.readableBytesView) == value)
            r = try await client.send(.get, "/v1/kv/a%2Fb%00%FF", headers: [("Accept", "application/json")])
            #expect(r.json["key"] is NSNull)
            #expect(r.json["key_b64"] as? String == Data([0x61, 0x2F, 0x62, 0x00, 0xFF]).base64EncodedString())
            #expect(r.json["value_b64"] as? String == Data(value).base64EncodedString())
        }
    }

    @Test func incrementCountsAndReportsTypedErrors() async throws {
        try await withRouter { client, db, _ in
            var r = try await client.send(.post, "/v1/incr/visits")
            #expect(r.status == .ok)
            #expect(r.json["value"] as? String == "1")
            r = try await client.send(.post, "/v1/incr/visits", #"{"delta": 41}"#)
            #expect(r.json["value"] as? String == "42")
            #expect(r.header("ETag") != nil)
            r = try await client.send(.post, "/v1/incr/fresh", #"{"delta": 1, "initial": 100}"#)
            #expect(r.json["value"] as? String == "101")

            _ = try await db.put("text", "hello")
            r = try await client.send(.post, "/v1/incr/text")
            expectProblem(r, .conflict, "42804")
            #expect(try await db.get("text")?.value == "hello")

            _ = try await db.put("big", Bytes(Int64.max))
            r = try await client.send(.post, "/v1/incr/big")
            expectProblem(r, .conflict, "22003")
            #expect(try await db.get("big")?.value == Bytes(Int64.max))

            let v = try #require(try await db.get("visits")?.version)
            r = try await client.send(.post, "/v1/incr/visits", headers: [("If-Match", "\"\(v + 1000)\"")])
            expectProblem(r, .preconditionFailed, "IK412")
            #expect(try await db.get("visits")?.value == "42")
        }
    }

    @Test func requestIDsAreEchoedAndUsedAsInstance() async throws {
        try await withRouter { client, _, _ in
            var r = try await client.send(.get, "/v1/kv/missing", headers: [("X-Request-Id", "abc-123")])
            #expect(r.header("X-Request-Id") == "abc-123")
            #expect(expectProblem(r, .notFound, "02000")["instance"] as? String == "abc-123")
            r = try await client.send(.get, "/v1/kv/missing")
            #expect(r.header("X-Request-Id")?.hasPrefix("req-") == true)
        }
    }

    @Test func unknownRoutesAndMethodsAreProblems() async throws {
        try await withRouter { client, _, _ in
            expectProblem(try await client.send(.get, "/v2/nothing"), .notFound, "IK404")
            let r = try await client.send(.patch, "/v1/kv/k", "x")
            #expect(r.status == .notFound || r.status == .methodNotAllowed)
            #expect(r.header("Content-Type") == "application/problem+json")
        }
    }

    @Test func healthReadinessAndMetrics() async throws {
        try await withRouter { client, _, server in
            #expect(try await client.send(.get, "/healthz").status == .ok)
            #expect(try await client.send(.get, "/readyz").status == .ok)
            _ = try await client.send(.put, "/v1/kv/m", "1")
            _ = try await client.send(.get, "/v1/kv/nope")
            let m = try await client.send(.get, "/metrics")
            #expect(m.status == .ok)
            #expect(m.header("Content-Type")?.hasPrefix("text/plain") == true)
            #expect(
                m.text.contains(#"isokv_http_requests_total{route="/v1/kv/{key}",method="PUT",status="201"} 1"#),
                "\(m.text)")
            #expect(m.text.contains(#"isokv_http_requests_total{route="/v1/kv/{key}",method="GET",status="404"} 1"#))
            #expect(m.text.contains(#"isokv_commits_total{kind="single"} 1"#))
            #expect(m.text.contains("isokv_aborts_total"))
            #expect(m.text.contains("isokv_open_transactions"))
            server.state.registry.beginDraining()
            let ready = try await client.send(.get, "/readyz")
            #expect(ready.status == .serviceUnavailable)
            #expect(ready.text.contains("57P01"))
            expectProblem(try await client.send(.post, "/v1/transactions", "{}"), .serviceUnavailable, "57P01")
            #expect(try await client.send(.get, "/healthz").status == .ok)
        }
    }
}
