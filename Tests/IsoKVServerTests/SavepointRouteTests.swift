import Foundation
import HummingbirdTesting
import IsoKV
import IsoKVCore
@testable import IsoKVServer
import Testing

/// Savepoints over HTTP: `POST …/savepoints`, `POST …/savepoints/{n}/rollback`, `DELETE …/savepoints/{n}`.
@Suite("Server savepoint routes")
struct SavepointRouteTests {
    @Test func rollbackToASavepointUndoesLaterWritesAndRevivesAFailedTransaction() async throws {
        try await withRouter { client, db, _ in
            _ = try await db.put("taken", "x")
            let id = try await begin(client)
            #expect(try await client.send(.put, "/v1/transactions/\(id)/kv/a", "1").status.code < 300)
            var r = try await client.send(.post, "/v1/transactions/\(id)/savepoints")
            #expect(r.status == .created, "\(r.text)")
            let sp = try #require(r.json["savepoint"] as? Int)
            #expect(try await client.send(.put, "/v1/transactions/\(id)/kv/a", "2").status.code < 300)
            #expect(try await client.send(.put, "/v1/transactions/\(id)/kv/b", "2").status.code < 300)
            // A failing op fails the transaction …
            r = try await client.send(
                .post, "/v1/transactions/\(id)/ops", #"{"ops": [{"op": "create", "key": "taken", "value": "y"}]}"#)
            expectProblem(r, .conflict, "23505")
            expectProblem(try await client.send(.get, "/v1/transactions/\(id)/kv/a"), .conflict, "25P02")
            // … and the rollback to the savepoint undoes the later writes and makes it usable again.
            r = try await client.send(.post, "/v1/transactions/\(id)/savepoints/\(sp)/rollback")
            #expect(r.status == .noContent, "\(r.text)")
            #expect(try await client.send(.get, "/v1/transactions/\(id)/kv/a").text == "1")
            expectProblem(try await client.send(.get, "/v1/transactions/\(id)/kv/b"), .notFound, "02000")
            // Release forgets it; an unknown savepoint is 3B001.
            #expect(try await client.send(.delete, "/v1/transactions/\(id)/savepoints/\(sp)").status == .noContent)
            expectProblem(
                try await client.send(.post, "/v1/transactions/\(id)/savepoints/\(sp)/rollback"), .conflict, "3B001")
            expectProblem(
                try await client.send(.post, "/v1/transactions/\(id)/savepoints/99/rollback"), .conflict, "3B001")
            #expect(try await client.send(.post, "/v1/transactions/\(id)/commit").status == .ok)
            #expect(try await db.get("a")?.value == "1")
            #expect(try await db.get("b") == nil)
            #expect(try await db.get("taken")?.value == "x")
        }
    }
}
