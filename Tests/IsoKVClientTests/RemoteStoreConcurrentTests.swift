import Foundation
import HummingbirdTesting
import IsoKV
import IsoKVClient
import IsoKVCore
import IsoKVServer
import Testing

/// The store contract through `IsoKVRemote` against a live in-process server on a loopback port.
@Suite("Remote store Concurrent (client against a live server)")
struct RemoteStoreConcurrentTests {
    func withRemote(token: String? = nil, _ body: @Sendable (IsoKVRemote, Database) async throws -> Void) async throws {
        let db = Database.inMemory()
        var configuration = ServerConfiguration(port: 0)
        configuration.token = token
        let server = try IsoKVServer(configuration: configuration, database: db, closeDatabase: false)
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            try await body(IsoKVRemote(url: "http://127.0.0.1:\(port)", token: token), db)
        }
    }

    @Test func singleKeyOperationsWithVersions() async throws {
        try await withRemote(token: "tok") { store, db in
            let v1 = try await store.put("doc", "one")
            #expect(try await store.get("doc") == VersionedValue(value: "one", version: v1))
            let v2 = try await store.put("doc", "two", ifVersion: v1)
            #expect(v2 > v1)
            await #expect(throws: IsoKVError.self) { try await store.put("doc", "lost", ifVersion: v1) }
            do { _ = try await store.put("doc", "x", ifAbsent: true); Issue.record("no 23505") } catch let e
                as IsoKVError
            { #expect(e.code == .uniqueViolation) }
            #expect(try await store.put(Bytes([0, 0x2F, 0xFF, 0x2E]), "binary", ifAbsent: true) > v2)
            #expect(try await db.get(Bytes([0, 0x2F, 0xFF, 0x2E]))?.value == "binary")
            // Binary keys go through the JSON endpoints: the same contract.
            let bin = Bytes([0, 0x2F, 0xFF, 0x2E])
            let bv = try #require(try await store.get(bin))
            #expect(bv.value == "binary")
            let bv2 = try await store.put(bin, "b2", ifVersion: bv.version)
            do { _ = try await store.put(bin, "lost", ifVersion: bv.version); Issue.record("no IK412") } catch let e
                as IsoKVError
            { #expect(e.code == .versionMismatch) }
            do { _ = try await store.put(bin, "x", ifAbsent: true); Issue.record("no 23505") } catch let e as IsoKVError
            { #expect(e.code == .uniqueViolation) }
            #expect(try await store.increment(Bytes([1, 2]), by: 3) == 3)
            try await store.delete(bin, ifVersion: bv2)
            #expect(try await store.delete(bin) == false)
            let inTx: Bytes? = try await store.transaction(.snapshot) { tx in
                try await tx.put(bin, "in tx")
                return try await tx.get(bin)
            }
            #expect(inTx == "in tx")
            #expect(try await store.increment("n", by: 5) == 5)
            #expect(try await store.increment("n") == 6)
            do { _ = try await store.increment("doc"); Issue.record("no 22023") } catch let e as IsoKVError {
                #expect(e.code == .invalidInput)
            }
            do { try await store.delete("doc", ifVersion: v1); Issue.record("no IK412") } catch let e as IsoKVError {
                #expect(e.code == .versionMismatch)
            }
            try await store.delete("doc", ifVersion: v2)
            #expect(try await store.delete("doc") == false)
            #expect(try await store.get("doc") == nil)
            let updated = try await store.update("n") { old in Bytes((old?.int64 ?? 0) * 10) }
            #expect(updated == "60")
        }
    }

    @Test func transactionsScansAndLocks() async throws {
        try await withRemote { store, db in
            try await store.transaction(.snapshot) { tx in
                for i in 0..<30 { try await tx.put(Bytes("s/\(String(format: "%02d", i))"), Bytes("\(i)")) }
                try await tx.insert("unique", "1")
            }
            let all = try await store.transaction(.snapshot, readOnly: true) { tx in try await tx.scan(prefix: "s/") }
            #expect(all.count == 30)
            let tail = try await store.transaction(.readCommitted) { tx in
                try await tx.scan(prefix: "s/", limit: 3, reverse: true)
            }
            #expect(tail.map(\.key) == ["s/29", "s/28", "s/27"])
            // 23505, and the server's PostgreSQL rule: the failed transaction refuses later operations.
            let tx = try await store.begin(.readCommitted)
            do { try await tx.insert("unique", "2"); Issue.record("no 23505") } catch let e as IsoKVError {
                #expect(e.code == .uniqueViolation)
            }
            do { _ = try await tx.get("unique"); Issue.record("no 25P02") } catch let e as IsoKVError {
                #expect(e.code == .transactionAborted)
            }
            try await tx.rollback()
            // Row locks: NOWAIT and SKIP LOCKED between two transactions.
            let a = try await store.begin(.readCommitted)
            #expect(try await a.lock("s/00", .forUpdate, wait: .block) == "0")
            let b = try await store.begin(.readCommitted)
            do { _ = try await b.lock("s/00", .forShare, wait: .noWait); Issue.record("no 55P03") } catch let e
                as IsoKVError
            { #expect(e.code == .lockNotAvailable) }
            try await b.rollback()
            let c = try await store.begin(.readCommitted)
            let free = try await c.scan(.prefix("s/"), limit: 2, lock: .forUpdate, wait: .skipLocked)
            #expect(free.map(\.key) == ["s/01", "s/02"])
            try await c.commit()
            try await a.commit()
            // Read-only transactions refuse writes (25006).
            let ro = try await store.begin(.snapshot, readOnly: true)
            do { try await ro.put("x", "1"); Issue.record("no 25006") } catch let e as IsoKVError {
                #expect(e.code == .readOnlyTransaction)
            }
            try await ro.rollback()
            #expect(try await db.get("x") == nil)
        }
    }

    @Test func retriesOverHTTPKeepEveryIncrement() async throws {
        try await withRemote { store, _ in
            _ = try await store.put("counter", "0")
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Fewer tasks than the client's connections per host (8): see IsoKVRemote's notes on lock waits.
                for _ in 0..<6 {
                    group.addTask {
                        try await store.transaction(.snapshot, retry: RetryPolicy(maxAttempts: 200)) { tx in
                            let n = try await tx.get("counter")?.int64 ?? 0
                            try await tx.put("counter", Bytes(n + 1))
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await store.get("counter")?.value == "6")
        }
    }

    @Test func serializableWriteSkewIsPreventedRemotely() async throws {
        try await withRemote { store, _ in
            _ = try await store.put("oncall/alice", "on")
            _ = try await store.put("oncall/bob", "on")
            let t1 = try await store.begin(.serializable)
            let t2 = try await store.begin(.serializable)
            for tx in [t1, t2] {
                _ = try await tx.get("oncall/alice")
                _ = try await tx.get("oncall/bob")
            }
            var failures = 0
            for (tx, key) in [(t1, "oncall/alice"), (t2, "oncall/bob")] {
                do {
                    try await tx.put(Bytes(key), "off")
                    try await tx.commit()
                } catch let e as IsoKVError where e.code == .serializationFailure {
                    #expect(e.isRetryable)
                    failures += 1
                    try await tx.rollback()
                }
            }
            #expect(failures == 1)
            let on = try await [store.get("oncall/alice"), store.get("oncall/bob")].filter { $0?.value == "on" }.count
            #expect(on == 1)
        }
    }
}
