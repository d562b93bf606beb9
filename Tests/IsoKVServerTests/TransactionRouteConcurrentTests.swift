import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IsoKV
import IsoKVCore
@testable import IsoKVServer
import Testing

@Suite("Server interactive transactions (Concurrent)")
struct TransactionRouteConcurrentTests {
    @Test func beginOpsCommitAndReplay() async throws {
        try await withRouter { client, db, _ in
            let id = try await begin(client, #"{"isolation": "snapshot"}"#)
            var r = try await client.send(.get, "/v1/transactions/\(id)")
            #expect(r.json["state"] as? String == "active")
            r = try await client.send(
                .post, "/v1/transactions/\(id)/ops",
                """
                {"ops": [{"op": "put", "key": "a", "value": "1"}, {"op": "get", "key": "a"}, {"op": "get", "key": "zz"},
                         {"op": "incr", "key": "n", "delta": 5}]}
                """)
            #expect(r.status == .ok, "\(r.text)")
            let results = try #require(r.json["results"] as? [[String: Any]])
            #expect(results[1]["value"] as? String == "1")
            #expect(results[2]["found"] as? Bool == false)
            #expect(results[3]["value"] as? String == "5")
            r = try await client.send(.put, "/v1/transactions/\(id)/kv/b", "2")
            #expect(r.status == .created)
            r = try await client.send(.get, "/v1/transactions/\(id)/kv/b")
            #expect(r.text == "2")
            #expect(try await db.get("a") == nil)  // not visible before commit
            r = try await client.send(.post, "/v1/transactions/\(id)/commit")
            #expect(r.status == .ok)
            let revision = try #require(r.json["revision"] as? Int)
            #expect(try await db.get("a")?.version == UInt64(revision))
            #expect(try await db.get("b")?.value == "2")
            // The same commit again replays the stored outcome.
            r = try await client.send(.post, "/v1/transactions/\(id)/commit")
            #expect(r.status == .ok)
            #expect(r.json["revision"] as? Int == revision)
            r = try await client.send(.get, "/v1/transactions/\(id)")
            #expect(r.json["state"] as? String == "committed")
            // Ops after commit: 404 25P01; rollback is always 204.
            expectProblem(
                try await client.send(.post, "/v1/transactions/\(id)/ops", #"{"ops": []}"#), .notFound, "25P01")
            #expect(try await client.send(.post, "/v1/transactions/\(id)/rollback").status == .noContent)
            #expect(try await client.send(.delete, "/v1/transactions/AAAAAAAAAAAAAAAAAAAAAA").status == .noContent)
            expectProblem(
                try await client.send(.post, "/v1/transactions/AAAAAAAAAAAAAAAAAAAAAA/commit"), .notFound, "25P01")
        }
    }

    @Test func rollbackUndoesAndFailedTransactionsRefuseOps() async throws {
        try await withRouter { client, db, _ in
            var id = try await begin(client)
            _ = try await client.send(.put, "/v1/transactions/\(id)/kv/k", "v")
            #expect(try await client.send(.post, "/v1/transactions/\(id)/rollback").status == .noContent)
            #expect(try await db.get("k") == nil)
            expectProblem(try await client.send(.post, "/v1/transactions/\(id)/commit"), .notFound, "25P01")

            _ = try await db.put("exists", "1")
            id = try await begin(client)
            _ = try await client.send(.put, "/v1/transactions/\(id)/kv/k", "v")
            var r = try await client.send(
                .post, "/v1/transactions/\(id)/ops",
                #"{"ops": [{"op": "get", "key": "k"}, {"op": "create", "key": "exists", "value": "2"}]}"#)
            #expect(expectProblem(r, .conflict, "23505")["op_index"] as? Int == 1)
            r = try await client.send(.post, "/v1/transactions/\(id)/ops", #"{"ops": [{"op": "get", "key": "k"}]}"#)
            expectProblem(r, .conflict, "25P02")
            #expect(try await client.send(.get, "/v1/transactions/\(id)").json["state"] as? String == "failed")
            r = try await client.send(.post, "/v1/transactions/\(id)/commit")
            #expect(expectProblem(r, .conflict, "25P02")["outcome"] as? String == "rolled_back")
            #expect(try await db.get("k") == nil)
            r = try await client.send(.post, "/v1/transactions/\(id)/commit")  // replayed
            expectProblem(r, .conflict, "25P02")

            // Assert and the read-only error.
            id = try await begin(client)
            r = try await client.send(
                .post, "/v1/transactions/\(id)/ops", #"{"ops": [{"op": "assert", "key": "exists", "version": 999999}]}"#
            )
            expectProblem(r, .preconditionFailed, "IK412")
            let ro = try await begin(client, #"{"read_only": true}"#)
            expectProblem(try await client.send(.put, "/v1/transactions/\(ro)/kv/x", "1"), .conflict, "25006")
        }
    }

    @Test func singleKeyRoutesInsideATransaction() async throws {
        try await withRouter { client, db, _ in
            _ = try await db.put("gone", "1")
            let id = try await begin(client, #"{"isolation": "read_committed"}"#)
            var r = try await client.send(.delete, "/v1/transactions/\(id)/kv/gone")
            #expect(r.status == .noContent)
            expectProblem(try await client.send(.delete, "/v1/transactions/\(id)/kv/never"), .notFound, "02000")
            r = try await client.send(.put, "/v1/transactions/\(id)/kv/new", "v", headers: [("If-None-Match", "*")])
            #expect(r.status == .created, "\(r.text)")
            // `*` sees the transaction's own write.
            expectProblem(
                try await client.send(.put, "/v1/transactions/\(id)/kv/new", "w", headers: [("If-None-Match", "*")]),
                .preconditionFailed, "IK412")
            #expect(try await db.get("gone")?.value == "1")
            #expect(try await client.send(.post, "/v1/transactions/\(id)/rollback").status == .noContent)
            #expect(try await db.get("gone")?.value == "1")
            #expect(try await db.get("new") == nil)
        }
    }

    @Test func writeCapsOfOneTransactionAre413() async throws {
        try await withRouter({
            $0.limits.maxTransactionWrites = 2; $0.limits.maxTransactionWriteBytes = 10
        }) { client, db, _ in
            let id = try await begin(client)
            var r = try await client.send(
                .post, "/v1/transactions/\(id)/ops",
                """
                {"ops": [{"op": "put", "key": "a", "value": "1"}, {"op": "put", "key": "b", "value": "2"},
                         {"op": "put", "key": "a", "value": "3"}, {"op": "put", "key": "c", "value": "4"}]}
                """)
            var p = expectProblem(r, .contentTooLarge, "54000")
            #expect(p["op_index"] as? Int == 3)
            #expect(p["limit"] as? Int == 2)
            expectProblem(try await client.send(.post, "/v1/transactions/\(id)/commit"), .conflict, "25P02")
            let other = try await begin(client)
            r = try await client.send(.put, "/v1/transactions/\(other)/kv/big", "12345678901")
            p = expectProblem(r, .contentTooLarge, "54000")
            #expect(p["limit"] as? Int == 10)
            #expect(try await contents(db).isEmpty)
        }
    }

    @Test func opsOnOpenTransactionsWhileDrainingAre503() async throws {
        try await withRouter { client, db, server in
            let id = try await begin(client)
            _ = try await client.send(.put, "/v1/transactions/\(id)/kv/k", "v")
            server.state.registry.beginDraining()
            let r = try await client.send(.post, "/v1/transactions/\(id)/commit")
            #expect(expectProblem(r, .serviceUnavailable, "57P01")["outcome"] as? String == "rolled_back")
            #expect(r.header("Connection") == "close")
            #expect(try await db.get("k") == nil)
        }
    }

    @Test func snapshotFirstUpdaterWinsIs40001() async throws {
        try await withRouter { client, db, _ in
            _ = try await db.put("c", "0")
            let id = try await begin(client, #"{"isolation": "repeatable_read"}"#)
            _ = try await client.send(.get, "/v1/transactions/\(id)/kv/c")
            _ = try await client.send(.put, "/v1/kv/c", "9")
            let r = try await client.send(.put, "/v1/transactions/\(id)/kv/c", "1")
            let p = expectProblem(r, .conflict, "40001")
            #expect(p["retryable"] as? Bool == true)
            #expect(r.header("Retry-After") != nil)
            #expect(try await db.get("c")?.value == "9")
        }
    }

    @Test func lockingReadsNowaitSkipLockedAndETags() async throws {
        try await withRouter { client, db, _ in
            let v = try await db.put("row", "x")
            let a = try await begin(client, #"{"isolation": "read_committed"}"#)
            let b = try await begin(client, #"{"isolation": "read_committed"}"#)
            var r = try await client.send(.get, "/v1/transactions/\(a)/kv/row?lock=for_update")
            #expect(r.text == "x")
            #expect(r.header("ETag") == "\"\(v)\"")
            r = try await client.send(.get, "/v1/transactions/\(b)/kv/row?lock=for_update&wait=nowait")
            let p = expectProblem(r, .conflict, "55P03")
            #expect(p["retryable"] as? Bool == true)
            // NOWAIT's failure failed b (PostgreSQL semantics); a fresh transaction skips the locked row.
            expectProblem(try await client.send(.get, "/v1/transactions/\(b)/kv/row"), .conflict, "25P02")
            let d = try await begin(client, #"{"isolation": "read_committed"}"#)
            r = try await client.send(.get, "/v1/transactions/\(d)/kv/row?lock=for_share&wait=skip_locked")
            #expect(expectProblem(r, .notFound, "02000")["skipped"] as? Bool == true)
            r = try await client.send(.get, "/v1/transactions/\(d)/kv/absent?lock=for_share&wait=skip_locked")
            #expect(expectProblem(r, .notFound, "02000")["skipped"] is NSNull)
            // The transaction-level If-Match is checked under the row lock.
            r = try await client.send(
                .put, "/v1/transactions/\(a)/kv/row", "y", headers: [("If-Match", "\"\(v + 7)\"")])
            expectProblem(r, .preconditionFailed, "IK412")
            _ = try await client.send(.post, "/v1/transactions/\(a)/rollback")
            let c = try await begin(client, #"{"isolation": "read_committed"}"#)
            r = try await client.send(.put, "/v1/transactions/\(c)/kv/row", "y", headers: [("If-Match", "\"\(v)\"")])
            #expect(r.status == .ok, "\(r.text)")
            #expect(try await client.send(.post, "/v1/transactions/\(c)/commit").status == .ok)
            #expect(try await db.get("row")?.value == "y")
        }
    }

    @Test func lockWaitsAreInTheMetrics() async throws {
        try await withRouter { client, db, _ in
            let metrics = { try await client.send(.get, "/metrics").text }
            #expect(try await metrics().contains("isokv_lock_waits_total 0"))
            let holder = try await begin(client, #"{"isolation": "read_committed"}"#)
            _ = try await client.send(.get, "/v1/transactions/\(holder)/kv/hot?lock=for_update")
            let waiter = try await begin(client, #"{"isolation": "read_committed"}"#)
            async let blocked = client.send(.get, "/v1/transactions/\(waiter)/kv/hot?lock=for_update")
            #expect(try await eventually { db.statistics().lockWaits.waits == 1 })
            try await Task.sleep(for: .milliseconds(20))
            #expect(try await client.send(.post, "/v1/transactions/\(holder)/commit").status == .ok)
            #expect(try await blocked.status == .notFound)  // granted; the row does not exist
            let text = try await metrics()
            #expect(text.contains("isokv_lock_waits_total 1"), "\(text)")
            let line = try #require(
                text.split(separator: "\n").first { $0.hasPrefix("isokv_lock_wait_microseconds_total ") })
            let micros = try #require(Int(line.split(separator: " ").last ?? ""))
            #expect(micros >= 20_000, "\(line)")
        }
    }

    @Test func deadlockIs40P01() async throws {
        try await withRouter { client, db, _ in
            let a = try await begin(client, #"{"isolation": "read_committed"}"#)
            let b = try await begin(client, #"{"isolation": "read_committed"}"#)
            _ = try await client.send(.get, "/v1/transactions/\(a)/kv/x?lock=for_update")
            _ = try await client.send(.get, "/v1/transactions/\(b)/kv/y?lock=for_update")
            async let ra = client.send(.put, "/v1/transactions/\(a)/kv/y", "a")
            async let rb = client.send(.put, "/v1/transactions/\(b)/kv/x", "b")
            let statuses = [try await ra, try await rb]
            let deadlocked = statuses.filter { $0.json["code"] as? String == "40P01" }
            #expect(deadlocked.count == 1, "\(statuses.map(\.text))")
            #expect(deadlocked.first?.status == .conflict)
            #expect(statuses.filter { $0.status == .created || $0.status == .ok }.count == 1)
            _ = db
        }
    }

    @Test func busyTransactionIs55006AndTooManyIs53300() async throws {
        try await withRouter({ $0.limits.maxOpenTransactions = 3 }) { client, db, _ in
            let holder = try await begin(client, #"{"isolation": "read_committed"}"#)
            _ = try await client.send(.get, "/v1/transactions/\(holder)/kv/hot?lock=for_update")
            let waiter = try await begin(client, #"{"isolation": "read_committed"}"#)
            async let blocked = client.send(.put, "/v1/transactions/\(waiter)/kv/hot", "w")
            let busy = try await eventually {
                try await client.send(.get, "/v1/transactions/\(waiter)").json["busy"] as? Bool == true
            }
            #expect(busy)
            let before = try await contents(db)
            let r = try await client.send(.put, "/v1/transactions/\(waiter)/kv/other", "x")
            expectProblem(r, .conflict, "55006")
            _ = try await begin(client)
            expectProblem(try await client.send(.post, "/v1/transactions", "{}"), .serviceUnavailable, "53300")
            #expect(try await contents(db) == before)
            _ = try await client.send(.post, "/v1/transactions/\(holder)/rollback")
            #expect(try await blocked.status == .created)
        }
    }

    @Test func idleTimeoutAndLifetimeCapLeaveTombstones() async throws {
        try await withRouter({ $0.limits.reaperInterval = .milliseconds(20) }) { client, db, _ in
            let idle = try await begin(client, #"{"idle_timeout_ms": 300}"#)
            _ = try await client.send(.put, "/v1/transactions/\(idle)/kv/i", "1")
            let expired = try await eventually {
                try await client.send(.get, "/v1/transactions/\(idle)").json["state"] as? String == "rolled_back"
            }
            #expect(expired)
            let p = expectProblem(
                try await client.send(.post, "/v1/transactions/\(idle)/ops", #"{"ops": []}"#), .gone, "25P03")
            #expect(p["retryable"] as? Bool == true)
            expectProblem(try await client.send(.post, "/v1/transactions/\(idle)/commit"), .gone, "25P03")
            #expect(try await db.get("i") == nil)

            let capped = try await begin(client, #"{"timeout_ms": 400, "idle_timeout_ms": 60000}"#)
            _ = try await client.send(.put, "/v1/transactions/\(capped)/kv/j", "1")
            let ended = try await eventually {
                try await client.send(.post, "/v1/transactions/\(capped)/ops", #"{"ops": []}"#).json["code"] as? String
                    == "25P04"
            }
            #expect(ended)
            expectProblem(try await client.send(.post, "/v1/transactions/\(capped)/commit"), .gone, "25P04")
            #expect(try await db.get("j") == nil)
        }
    }

    @Test func serializableAndDeferrableReadOnly() async throws {
        try await withRouter { client, db, _ in
            _ = try await db.put("doc/1", "a")
            let id = try await begin(client, #"{"isolation": "serializable", "read_only": true, "deferrable": true}"#)
            let r = try await client.send(
                .post, "/v1/transactions/\(id)/ops", #"{"ops": [{"op": "scan", "prefix": "doc/"}]}"#)
            #expect((r.json["results"] as? [[String: Any]])?.first?["count"] as? Int == 1, "\(r.text)")
            #expect(try await client.send(.post, "/v1/transactions/\(id)/commit").status == .ok)
            expectProblem(
                try await client.send(.post, "/v1/transactions", #"{"isolation": "snapshot", "deferrable": true}"#),
                .badRequest, "22023")
        }
    }
}
