@_spi(Testing) import IsoKV
import Testing

/// The lost-update matrix: 100 concurrent increments of one counter, by each technique.
enum CounterReplays {
    static let n = 100

    /// Application read-modify-write; all 100 read before anyone writes (a barrier), so the interleaving is the
    /// worst case on purpose. Returns the final counter and the number of 40001 failures.
    static func readModifyWrite<S: TestableStore>(_ store: S, _ level: IsolationLevel, retry: RetryPolicy)
        async throws -> (final: Int64, failures: Int)
    {
        try await seed(store, [("counter", "0")])
        let barrier = Barrier(n)
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<n {
                group.addTask {
                    var first = true
                    do {
                        try await store.transaction(level, retry: retry) { tx in
                            let v = try await tx.get("counter")!.int64!
                            if first { first = false; await barrier.arrive() }
                            try await tx.put("counter", Bytes(v + 1))
                        }
                        return 0
                    } catch let e as IsoKVError where e.code == .serializationFailure {
                        return 1
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        return (try await value(store, "counter")!.int64!, failures)
    }

    static func concurrently<S: TestableStore>(_ store: S, _ op: @escaping @Sendable (S) async throws -> Void)
        async throws -> Int64
    {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<n { group.addTask { try await op(store) } }
            try await group.waitForAll()
        }
        return try await value(store, "counter")!.int64!
    }
}

@Suite("Counter (Stress)", .timeLimit(.minutes(2)))
struct CounterStressTests {
    @Test func readCommittedLosesUpdates() async throws {
        let db = makeDatabase()
        let (final, failures) = try await CounterReplays.readModifyWrite(db, .readCommitted, retry: .none)
        #expect(failures == 0)
        #expect(final == 1)  // everyone read 0 and wrote 1: 99 updates lost
        expectConsistent(db)
    }

    @Test func readUncommittedLosesUpdates() async throws {
        let db = makeDatabase()
        let (final, _) = try await CounterReplays.readModifyWrite(db, .readUncommitted, retry: .none)
        #expect(final == 1)
        expectConsistent(db)
    }

    @Test func snapshotDetectsLostUpdates() async throws {
        let db = makeDatabase()
        let (final, failures) = try await CounterReplays.readModifyWrite(db, .snapshot, retry: .none)
        #expect(db.statistics().aborts.serializationFailures == CounterReplays.n - 1)
        #expect(final == 1)
        #expect(failures == CounterReplays.n - 1)  // first updater wins, the 99 others get 40001
        expectConsistent(db)
    }

    @Test func snapshotWithRetryCountsExactly() async throws {
        let db = makeDatabase()
        let (final, failures) = try await CounterReplays.readModifyWrite(
            db, .snapshot, retry: RetryPolicy(maxAttempts: 1000, maxDelay: .milliseconds(2)))
        #expect(failures == 0)
        #expect(final == Int64(CounterReplays.n))
        expectConsistent(db)
    }

    @Test func incrementCountsExactly() async throws {
        let db = makeDatabase()
        let final = try await CounterReplays.concurrently(db) { try await $0.increment("counter", by: 1) }
        #expect(final == Int64(CounterReplays.n))
        expectConsistent(db)
    }

    @Test func updateCountsExactly() async throws {
        let db = makeDatabase()
        let final = try await CounterReplays.concurrently(db) { store in
            try await store.update("counter", maxAttempts: 10_000) { old in Bytes((old?.int64 ?? 0) + 1) }
        }
        #expect(final == Int64(CounterReplays.n))
        expectConsistent(db)
    }

    @Test(arguments: IsolationLevel.allCases) func selectForUpdateCountsExactly(_ level: IsolationLevel) async throws {
        let db = makeDatabase()
        try await seed(db, [("counter", "0")])
        // At snapshot the lock itself can hit first-updater-wins (40001) when the snapshot is older than the last
        // commit: the retry takes care of it.
        let final = try await CounterReplays.concurrently(db) { store in
            try await store.transaction(level, retry: RetryPolicy(maxAttempts: 1000, maxDelay: .milliseconds(2))) {
                tx in
                let v = try await tx.lock("counter", .forUpdate)!.int64!
                try await tx.put("counter", Bytes(v + 1))
            }
        }
        #expect(final == Int64(CounterReplays.n))
        expectConsistent(db)
    }
}
