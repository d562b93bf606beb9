import IsoKV
import IsoKVSync
import IsoKVTestSupport
import IsoKVWorkloads
import Testing

@Suite("Workloads retry observer")
struct RetryObserverTests {
    /// A snapshot transaction reads `k`; a single-key put commits a new version of `k` in between (only on the
    /// first attempt); the transaction's own write then fails first-updater-wins with 40001 and is retried.
    func conflictOnFirstAttempt(_ db: Database, retry: RetryPolicy) async throws -> Int {
        let attempts = Locked(0)
        try await db.transaction(.snapshot, retry: retry) { tx in
            let attempt = attempts.withLock {
                $0 += 1; return $0
            }
            _ = try await tx.get("k")
            if attempt == 1 { try await db.put("k", "theirs") }
            try await tx.put("k", "mine")
        }
        return attempts.withLock { $0 }
    }

    @Test("a forced 40001 reaches onRetry with attempt 1, then the retry commits")
    func transactionRetry() async throws {
        let db = Database.inMemory()
        try await db.put("k", "0")
        let events = Locked([RetryEvent]())
        let policy = RetryPolicy(maxAttempts: 3, baseDelay: .zero) { event in events.withLock { $0.append(event) } }
        let attempts = try await conflictOnFirstAttempt(db, retry: policy)
        #expect(attempts == 2)
        let seen = events.withLock { $0 }
        #expect(seen.count == 1)
        #expect(seen.first?.attempt == 1)
        #expect(seen.first?.error.code == .serializationFailure)
        #expect(try await db.get("k")?.value == "mine")
    }

    @Test("the last failure is thrown, not observed")
    func lastFailureNotObserved() async throws {
        let db = Database.inMemory()
        try await db.put("k", "0")
        let events = Locked(0)
        let policy = RetryPolicy(maxAttempts: 1) { _ in events.withLock { $0 += 1 } }
        await #expect(throws: IsoKVError.self) { _ = try await conflictOnFirstAttempt(db, retry: policy) }
        #expect(events.withLock { $0 } == 0)
    }

    @Test("update reports each lost compare-and-set")
    func updateRetry() async throws {
        // Another writer puts `100` at the key right after the first read: the compare-and-set of `update` then
        // loses exactly once.
        let db = Database.inMemory()
        let intruded = Locked(false)
        let store = ForwardingStore(db) { key in
            if intruded.withLock({ first in
                defer { first = true }
                return !first
            }) {
                try await db.put(key, "100")
            }
        }
        try await store.put("k", "1")
        let events = Locked([RetryEvent]())
        let policy = RetryPolicy(maxAttempts: 5, baseDelay: .zero) { event in events.withLock { $0.append(event) } }
        let result = try await store.update("k", retry: policy) { old in Bytes((old?.int64 ?? 0) + 1) }
        #expect(result == "101", "the second attempt read the intruder's 100")
        let seen = events.withLock { $0 }
        #expect(seen.map(\.attempt) == [1])
        #expect(seen.first?.error.code == .versionMismatch)
    }

    @Test("a Worker counts retries through the observer and give-ups itself")
    func workerCounts() async throws {
        let db = Database.inMemory()
        try await db.put("k", "0")
        for (maxAttempts, expected) in [
            (3, (committed: 1, retries: 1, gaveUp: 0)), (1, (committed: 0, retries: 0, gaveUp: 1))
        ] {
            var worker = Worker(task: 0, seed: 1, retry: RetryPolicy(maxAttempts: maxAttempts, baseDelay: .zero))
            let attempts = Locked(0)
            try await worker.transaction(db, .snapshot) { tx in
                let attempt = attempts.withLock {
                    $0 += 1; return $0
                }
                _ = try await tx.get("k")
                if attempt == 1 { try await db.put("k", "theirs") }
                try await tx.put("k", "mine")
            }
            let counters = worker.allCounters
            #expect(counters.committed == expected.committed, "maxAttempts \(maxAttempts)")
            #expect(counters.retries == expected.retries, "maxAttempts \(maxAttempts)")
            #expect(counters.gaveUp == expected.gaveUp, "maxAttempts \(maxAttempts)")
            #expect(counters.aborts == ["40001": 1], "maxAttempts \(maxAttempts)")
        }
    }

    @Test("policies compare by schedule; the observer takes no part")
    func equality() {
        let watched = RetryPolicy(maxAttempts: 7) { _ in }
        #expect(watched == RetryPolicy(maxAttempts: 7))
        #expect(watched.hashValue == RetryPolicy(maxAttempts: 7).hashValue)
        #expect(watched != RetryPolicy(maxAttempts: 8))
    }
}
