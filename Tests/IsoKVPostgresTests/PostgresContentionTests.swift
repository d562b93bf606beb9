import IsoKVCore
import IsoKVPostgres
import Testing

// Not named "Concurrent…"/"Stress…": these suites need PostgreSQL, which the ThreadSanitizer step of scripts/test
// does not start; the PostgreSQL step runs them (and the store's own synchronization is covered by the TSan run of
// the engine's primitives it uses, `Locked`).

/// Many transactions at once on one PostgreSQL: queue claims, retries, versions.
@Suite("Postgres contention", .enabled(if: PostgresTestEnvironment.isAvailable, PostgresTestEnvironment.skipReason))
struct PostgresContentionTests {
    @Test("FOR UPDATE SKIP LOCKED: open claimers get disjoint rows")
    func skipLockedClaimsDisjoint() async throws {
        try await PostgresTestEnvironment.withStore { store in
            for i in 0..<20 { _ = try await store.put(Bytes("jobs/\(String(format: "%02d", i))"), "todo") }
            // Three transactions claim while all stay open: each must skip the others' rows.
            let t1 = try await store.begin(.readCommitted)
            let t2 = try await store.begin(.readCommitted)
            let t3 = try await store.begin(.readCommitted)
            let c1 = try await t1.scan(.prefix("jobs/"), limit: 5, lock: .forUpdate, wait: .skipLocked).map(\.key)
            let c2 = try await t2.scan(.prefix("jobs/"), limit: 5, lock: .forUpdate, wait: .skipLocked).map(\.key)
            let c3 = try await t3.scan(.prefix("jobs/"), limit: 20, lock: .forUpdate, wait: .skipLocked).map(\.key)
            #expect(c1.count == 5 && c2.count == 5 && c3.count == 10)
            #expect(Set(c1 + c2 + c3).count == 20)
            #expect(c1 == (0..<5).map { Bytes("jobs/\(String(format: "%02d", $0))") })
            // NOWAIT on a claimed row fails instead of skipping it.
            let t4 = try await store.begin(.readCommitted)
            #expect(
                await isoKVError { _ = try await t4.scan(.prefix("jobs/"), limit: 5, lock: .forUpdate, wait: .noWait) }?
                    .code == .lockNotAvailable)
            try await t4.rollback()
            // A single-key SKIP LOCKED lock returns nil for a claimed row.
            let t5 = try await store.begin(.readCommitted)
            #expect(try await t5.lock("jobs/00", .forUpdate, wait: .skipLocked) == nil)
            try await t5.rollback()
            for t in [t1, t2, t3] { try await t.rollback() }
        }
    }

    @Test("a queue drained by four workers with SKIP LOCKED: every job exactly once")
    func queueDrain() async throws {
        try await PostgresTestEnvironment.withStore { store in
            let jobs = 40
            for i in 0..<jobs { _ = try await store.put(Bytes("q/\(String(format: "%03d", i))"), Bytes("\(i)")) }
            let done = try await withThrowingTaskGroup(of: [Bytes].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        var mine: [Bytes] = []
                        while true {
                            let claimed: Bytes? = try await store.transaction(.readCommitted) { tx in
                                guard
                                    let job = try await tx.scan(
                                        .prefix("q/"), limit: 1, lock: .forUpdate,
                                        wait: .skipLocked
                                    ).first
                                else { return nil }
                                try await tx.delete(job.key)
                                return job.key
                            }
                            guard let claimed else { return mine }
                            mine.append(claimed)
                        }
                    }
                }
                return try await group.reduce(into: [Bytes]()) { $0 += $1 }
            }
            #expect(done.count == jobs)
            #expect(Set(done).count == jobs)
        }
    }

    @Test("20 read-modify-write increments at serializable through transaction { } end at exactly 20")
    func serializableRetriesToSuccess() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("counter", "0")
            let attempts = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        var tries = 0
                        try await store.transaction(
                            .serializable, retry: RetryPolicy(maxAttempts: 200, maxDelay: .milliseconds(20))
                        ) { tx in
                            tries += 1
                            let n = try await tx.get("counter")?.int64 ?? 0
                            try await tx.put("counter", Bytes(n + 1))
                        }
                        return tries
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(try await store.get("counter")?.value == "20")
            #expect(attempts >= 20)
        }
    }

    @Test("lost update at read committed without locks; none with increment, FOR UPDATE or update { }")
    func lostUpdateFixes() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("rc", "0")
            _ = try await store.put("atomic", "0")
            _ = try await store.put("locked", "0")
            _ = try await store.put("cas", "0")
            // Read committed read-modify-write with both reads before either write: one update is lost.
            let t1 = try await store.begin(.readCommitted)
            let t2 = try await store.begin(.readCommitted)
            let a = try await t1.get("rc")!.int64!
            let b = try await t2.get("rc")!.int64!
            try await t1.put("rc", Bytes(a + 1))
            try await t1.commit()
            try await t2.put("rc", Bytes(b + 1))
            try await t2.commit()
            #expect(try await store.get("rc")?.value == "1")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<10 {
                    group.addTask { _ = try await store.increment("atomic") }
                    group.addTask {
                        try await store.transaction(.readCommitted) { tx in
                            let n = try await tx.lock("locked", .forUpdate)!.int64!
                            try await tx.put("locked", Bytes(n + 1))
                        }
                    }
                    group.addTask { _ = try await store.update("cas") { Bytes(($0?.int64 ?? 0) + 1) } }
                }
                try await group.waitForAll()
            }
            #expect(try await store.get("atomic")?.value == "10")
            #expect(try await store.get("locked")?.value == "10")
            #expect(try await store.get("cas")?.value == "10")
        }
    }

    @Test("parallel puts on one key: distinct versions, the last one is the one stored")
    func versionsUnderContention() async throws {
        try await PostgresTestEnvironment.withStore { store in
            let versions = try await withThrowingTaskGroup(of: UInt64.self) { group in
                for i in 0..<30 { group.addTask { try await store.put("k", Bytes("\(i)")) } }
                return try await group.reduce(into: [UInt64]()) { $0.append($1) }
            }
            #expect(Set(versions).count == 30)
            #expect(try await store.get("k")?.version == versions.max())
        }
    }
}
