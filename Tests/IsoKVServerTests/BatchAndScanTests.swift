import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IsoKV
import IsoKVCore
@testable import IsoKVServer
import Testing

@Suite("Server batches and scans")
struct BatchAndScanTests {
    @Test func batchRunsSuccessOrFailureAtomically() async throws {
        try await withRouter { client, db, _ in
            let v = try await db.put("acct/a", "10")
            var r = try await client.send(
                .post, "/v1/txn",
                """
                {"compare": [{"key": "acct/a", "version": \(v)}, {"key": "acct/b", "exists": false}],
                 "success": [{"op": "put", "key": "acct/a", "value": "5"}, {"op": "create", "key": "acct/b", "value": "5"},
                             {"op": "get", "key": "acct/a"}, {"op": "incr", "key": "n", "delta": 2}],
                 "failure": [{"op": "get", "key": "acct/a"}]}
                """)
            #expect(r.status == .ok, "\(r.text)")
            var j = r.json
            #expect(j["succeeded"] as? Bool == true)
            let revision = try #require(j["revision"] as? Int)
            let results = try #require(j["results"] as? [[String: Any]])
            #expect(results.count == 4)
            #expect(results[0]["version"] as? Int == revision)
            #expect(results[2]["value"] as? String == "5")
            #expect(results[2]["version"] as? Int == revision)
            #expect(results[3]["value"] as? String == "2")
            #expect((j["failed_compares"] as? [Int]) == [])
            #expect(try await db.get("acct/b")?.version == UInt64(revision))

            // The same compare again fails: the failure branch runs and reports which compare failed.
            r = try await client.send(
                .post, "/v1/txn",
                """
                {"compare": [{"key": "acct/a", "version": \(v)}, {"key": "acct/b", "exists": true}],
                 "success": [{"op": "delete", "key": "acct/a"}],
                 "failure": [{"op": "get", "key": "acct/a"}, {"op": "get", "key": "nope"}]}
                """)
            j = r.json
            #expect(j["succeeded"] as? Bool == false)
            #expect((j["failed_compares"] as? [Int]) == [0])
            let f = try #require(j["results"] as? [[String: Any]])
            #expect(f[0]["value"] as? String == "5")
            #expect(f[1]["found"] as? Bool == false)
            #expect(try await db.get("acct/a")?.value == "5")

            // Without a failure branch a failed compare is 412 and nothing is written.
            let before = try await contents(db)
            r = try await client.send(
                .post, "/v1/txn",
                """
                {"compare": [{"key": "acct/a", "value": "999"}], "success": [{"op": "delete", "key": "acct/a"}]}
                """)
            let p = expectProblem(r, .preconditionFailed, "IK412")
            #expect((p["failed_compares"] as? [Int]) == [0])
            #expect(try await contents(db) == before)

            // A failing op rolls back the ops before it.
            r = try await client.send(
                .post, "/v1/txn",
                """
                {"success": [{"op": "put", "key": "x", "value": "1"}, {"op": "create", "key": "acct/a", "value": "0"}]}
                """)
            let q = expectProblem(r, .conflict, "23505")
            #expect(q["op_index"] as? Int == 1)
            #expect(try await db.get("x") == nil)

            // Version compares by order, and delete_range / scan ops.
            _ = try await db.put("r/1", "a"); _ = try await db.put("r/2", "b"); _ = try await db.put("r/3", "c")
            r = try await client.send(
                .post, "/v1/txn",
                """
                {"compare": [{"key": "r/1", "version": {"gt": 0}}, {"key": "none", "version": {"lt": 1}}],
                 "success": [{"op": "scan", "prefix": "r/", "limit": 2}, {"op": "delete_range", "prefix": "r/"}]}
                """)
            let ok = try #require(r.json["results"] as? [[String: Any]], "\(r.text)")
            #expect((ok[0]["items"] as? [[String: Any]])?.count == 2)
            #expect(ok[0]["more"] as? Bool == true)
            #expect(ok[1]["count"] as? Int == 3)
            #expect(try await db.get("r/2") == nil)
        }
    }

    @Test func scansPageThroughOneSnapshot() async throws {
        try await withRouter({ $0.limits.cursorIdleTimeout = .seconds(2) }) { client, db, _ in
            for i in 0..<25 { _ = try await db.put(Bytes("s/\(String(format: "%02d", i))"), Bytes("v\(i)")) }
            _ = try await db.put("t/other", "x")
            var r = try await client.send(.get, "/v1/kv?prefix=s/&limit=10")
            var j = r.json
            var items = try #require(j["items"] as? [[String: Any]])
            #expect(items.count == 10)
            #expect(items[0]["key"] as? String == "s/00")
            #expect(items[0]["version"] as? Int != nil)
            #expect(j["more"] as? Bool == true)
            let cursor = try #require(j["next_cursor"] as? String)
            // A write after the first page is not seen by later pages (same snapshot)...
            _ = try await db.put("s/15", "changed")
            _ = try await db.put("s/99", "new")
            r = try await client.send(.get, "/v1/kv?prefix=s/&limit=10&cursor=\(cursor)")
            j = r.json
            items = try #require(j["items"] as? [[String: Any]])
            #expect(items.first?["key"] as? String == "s/10")
            #expect(items[5]["value"] as? String == "v15")
            #expect(items[5]["version"] is NSNull)  // changed since the snapshot: no current version
            // ...and the same cursor twice gives the same page.
            let again = try await client.send(.get, "/v1/kv?prefix=s/&limit=10&cursor=\(cursor)")
            #expect((again.json["items"] as? [[String: Any]])?.first?["key"] as? String == "s/10")
            let c2 = try #require(j["next_cursor"] as? String)
            r = try await client.send(.get, "/v1/kv?prefix=s/&limit=10&cursor=\(c2)")
            j = r.json
            #expect((j["items"] as? [[String: Any]])?.count == 5)
            #expect(j["more"] as? Bool == false)
            #expect(j["next_cursor"] is NSNull)
            // The finished cursor is gone: 410 72000.
            expectProblem(try await client.send(.get, "/v1/kv?prefix=s/&limit=10&cursor=\(c2)"), .gone, "72000")
            // A cursor used with other parameters: 400.
            r = try await client.send(.get, "/v1/kv?prefix=s/&limit=3")
            let c3 = try #require(r.json["next_cursor"] as? String)
            expectProblem(try await client.send(.get, "/v1/kv?prefix=t/&cursor=\(c3)"), .badRequest, "22023")
            // An idle cursor expires: 410 (each use would renew it, so wait past the idle timeout first).
            try await Task.sleep(for: .milliseconds(2600))
            let expired = try await client.send(.get, "/v1/kv?prefix=s/&limit=3&cursor=\(c3)")
            #expect(expectProblem(expired, .gone, "72000")["retryable"] as? Bool == true)
            // Ranges, reverse, keys_only, base64 output.
            r = try await client.send(.get, "/v1/kv?start=s/20&end=s/23&reverse=true&keys_only=true&encoding=b64")
            items = try #require(r.json["items"] as? [[String: Any]])
            #expect(
                items.map { $0["key_b64"] as? String }
                    == ["s/22", "s/21", "s/20"].map { Data($0.utf8).base64EncodedString() })
            #expect(items[0]["value_b64"] is NSNull)
        }
    }

    @Test func queueClaimsAckExtendRelease() async throws {
        try await withRouter { client, db, _ in
            for i in 0..<3 { _ = try await db.put(Bytes("jobs/\(i)"), Bytes("payload \(i)")) }
            var r = try await client.send(
                .post, "/v1/queues/claim", #"{"prefix": "jobs/", "max": 2, "lease_ms": 60000}"#)
            var items = try #require(r.json["items"] as? [[String: Any]], "\(r.text)")
            #expect(items.map { $0["key"] as? String } == ["jobs/0", "jobs/1"])
            let receipt0 = try #require(items[0]["receipt"] as? String)
            let receipt1 = try #require(items[1]["receipt"] as? String)
            // Leased jobs are not claimed again.
            r = try await client.send(.post, "/v1/queues/claim", #"{"prefix": "jobs/", "max": 5}"#)
            items = try #require(r.json["items"] as? [[String: Any]])
            #expect(items.map { $0["key"] as? String } == ["jobs/2"])
            r = try await client.send(.post, "/v1/queues/claim", #"{"prefix": "jobs/", "max": 5, "wait_ms": 100}"#)
            #expect((r.json["items"] as? [Any])?.isEmpty == true)

            // ack with a wrong receipt: 412, the job stays.
            expectProblem(
                try await client.send(.post, "/v1/queues/ack", #"{"key": "jobs/0", "receipt": "1"}"#),
                .preconditionFailed, "IK412")
            #expect(try await db.get("jobs/0") != nil)
            r = try await client.send(.post, "/v1/queues/ack", #"{"key": "jobs/0", "receipt": "\#(receipt0)"}"#)
            #expect(r.status == .noContent)
            #expect(try await db.get("jobs/0") == nil)
            expectProblem(
                try await client.send(.post, "/v1/queues/ack", #"{"key": "jobs/0", "receipt": "\#(receipt0)"}"#),
                .preconditionFailed, "IK412")

            r = try await client.send(
                .post, "/v1/queues/extend", #"{"key": "jobs/1", "receipt": "\#(receipt1)", "lease_ms": 60000}"#)
            let newReceipt = try #require(r.json["receipt"] as? String, "\(r.text)")
            #expect(newReceipt != receipt1)
            expectProblem(
                try await client.send(.post, "/v1/queues/release", #"{"key": "jobs/1", "receipt": "\#(receipt1)"}"#),
                .preconditionFailed, "IK412")
            r = try await client.send(.post, "/v1/queues/release", #"{"key": "jobs/1", "receipt": "\#(newReceipt)"}"#)
            #expect(r.status == .noContent)
            r = try await client.send(.post, "/v1/queues/claim", #"{"prefix": "jobs/", "max": 5}"#)
            #expect((r.json["items"] as? [[String: Any]])?.map { $0["key"] as? String } == ["jobs/1"])
            // The job vanished under its lease: 404.
            let receipt = try #require((r.json["items"] as? [[String: Any]])?.first?["receipt"] as? String)
            _ = try await db.delete("jobs/1")
            expectProblem(
                try await client.send(.post, "/v1/queues/ack", #"{"key": "jobs/1", "receipt": "\#(receipt)"}"#),
                .notFound, "02000")
            // Reserved lease records never show in scans.
            let scan = try await client.send(.get, "/v1/kv")
            #expect(
                (scan.json["items"] as? [[String: Any]])?.allSatisfy {
                    ($0["key"] as? String)?.hasPrefix("jobs/") == true
                } == true)
        }
    }
}
