import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@_spi(Testing) import IsoKV
import IsoKVCore
import IsoKVStorage
@testable import IsoKVServer
import IsoKVTestSupport
import Synchronization
import Testing

@Suite("Server storage failures")
struct StorageFailureTests {
    @Test func failedFsyncIs500WithUnknownOutcomeAndReadinessDrops() async throws {
        let dir = TemporaryDirectory("server-fsync")
        defer { dir.remove() }
        let failing = Atomic<Bool>(false)
        var options = Database.OpenOptions()
        options.faults = FaultHook { point in
            point == .walSync && failing.load(ordering: .relaxed) ? .fail(errno: EIO) : nil
        }
        let db = try await Database.open(path: dir.path, options: options)
        let server = try makeServer(db)
        try await server.application.test(.router) { client in
            #expect(try await client.send(.put, "/v1/kv/a", "1").status == .created)
            let metrics = try await client.send(.get, "/metrics").text
            #expect(metrics.contains("isokv_wal_fsyncs_total"), "\(metrics)")
            #expect(metrics.contains("isokv_wal_group_commit_batch_size 1"))
            let id = try await begin(client)
            #expect(try await client.send(.put, "/v1/transactions/\(id)/kv/b", "2").status == .created)
            failing.store(true, ordering: .relaxed)
            var r = try await client.send(.put, "/v1/kv/a", "2")
            expectProblem(r, .internalServerError, "58030")
            r = try await client.send(.post, "/v1/transactions/\(id)/commit")
            #expect(expectProblem(r, .internalServerError, "58030")["outcome"] as? String == "unknown")
            r = try await client.send(.post, "/v1/transactions/\(id)/commit")  // replayed
            #expect(expectProblem(r, .internalServerError, "58030")["outcome"] as? String == "unknown")
            let ready = try await client.send(.get, "/readyz")
            #expect(ready.status == .serviceUnavailable)
            #expect(ready.text.contains("58030"))
            // Reads keep working.
            #expect(try await client.send(.get, "/v1/kv/a").text == "1")
        }
        await db.close()
    }
}
