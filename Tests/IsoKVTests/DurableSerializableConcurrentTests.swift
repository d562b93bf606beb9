import Testing
import Foundation
@testable import IsoKV
import IsoKVTestSupport

/// SERIALIZABLE on a durable database: the SSI pre-commit check runs before the WAL record is enqueued, the
/// transaction is `prepared` (it can no longer be a victim) while the fsync is in flight, and it is marked
/// committed at publication. The anomalies SSI prevents in memory must stay prevented here.
@Suite struct DurableSerializableConcurrentTests {
    /// The two doctors on a durable database: the second commit fails with 40001, and after a reopen exactly one
    /// doctor is off call.
    @Test(arguments: [Database.Durability.fsync, .unsafeNoSync])
    func doctorsOnCall(_ mode: Database.Durability) async throws {
        let dir = TemporaryDirectory("ssi-doctors")
        defer { dir.remove() }
        do {
            let db = try await Database.open(path: dir.path, options: durableOptions(mode))
            try await seed(db, [("doctor/alice", "on"), ("doctor/bob", "on")])
            let t1 = try await db.begin(.serializable)
            let t2 = try await db.begin(.serializable)
            for t in [t1, t2] {
                #expect(try await t.get("doctor/alice") == "on")
                #expect(try await t.get("doctor/bob") == "on")
            }
            try await t1.put("doctor/alice", "off")
            try await t2.put("doctor/bob", "off")
            try await t1.commit()
            var failure: IsoKVError?
            do { try await t2.commit() } catch let e as IsoKVError { failure = e }
            #expect(failure?.code == .serializationFailure)
            await db.close()
            expectConsistent(db)
        }
        let db = try await Database.open(path: dir.path, options: durableOptions(mode))
        #expect(try await value(db, "doctor/alice") == "off")
        #expect(try await value(db, "doctor/bob") == "on")
        await db.close()
    }

    /// Write skew under load: pairs of accounts whose sum must stay ≥ 0, each transaction reading both and
    /// withdrawing from one. Concurrent serializable transactions with retries on a durable database never break
    /// the rule while commits wait for their fsync (prepared) and others read and write around them. (Here the
    /// conflicts are mostly caught at read/write time; `doctorsOnCall` is the deterministic case that only the
    /// prepare-time check catches.)
    @Test func writeSkewGuardHoldsOnDurableDatabase() async throws {
        let dir = TemporaryDirectory("ssi-skew")
        defer { dir.remove() }
        let db = try await Database.open(path: dir.path, options: durableOptions(.fsync))
        let pairs = 2
        try await seed(
            db, (0..<pairs).flatMap { p in [(Bytes("a/\(p)/x"), Bytes("50")), (Bytes("a/\(p)/y"), Bytes("50"))] })
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var rng = SystemRandomNumberGenerator()
                    for i in 0..<40 {
                        let p = (task + i) % pairs
                        let side = Bool.random(using: &rng) ? "x" : "y"
                        try await db.transaction(.serializable, retry: RetryPolicy(maxAttempts: 1_000)) { tx in
                            let x = Int(String(decoding: try await tx.get(Bytes("a/\(p)/x"))!.bytes, as: UTF8.self))!
                            let y = Int(String(decoding: try await tx.get(Bytes("a/\(p)/y"))!.bytes, as: UTF8.self))!
                            if x + y >= 30 {
                                let key = Bytes("a/\(p)/\(side)")
                                let current = side == "x" ? x : y
                                try await tx.put(key, Bytes("\(current - 30)"))
                            } else {
                                // Top the pair up so that the run keeps producing conflicts.
                                try await tx.put(Bytes("a/\(p)/x"), Bytes("\(x + 60)"))
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        for p in 0..<pairs {
            let x = Int(String(decoding: try await value(db, Bytes("a/\(p)/x"))!.bytes, as: UTF8.self))!
            let y = Int(String(decoding: try await value(db, Bytes("a/\(p)/y"))!.bytes, as: UTF8.self))!
            #expect(x + y >= 0, "pair \(p): \(x) + \(y)")
        }
        await db.close()
        expectConsistent(db)
    }
}
