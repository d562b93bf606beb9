@_spi(Testing) import IsoKV
import IsoKVSync
import IsoKVTestSupport
import Testing

/// `transaction(retry:)` and `update` retry a bounded number of times, then give up with the last error: each
/// attempt here loses a real conflict (no error is made up by the test).
@Suite("Retry give-up")
struct RetryGiveUpTests {
    /// Every attempt reads `k`, then an autocommit write changes it, then the attempt writes it: 40001
    /// (first updater wins) every time. After `maxAttempts` attempts the error of the last one is thrown; the
    /// observer saw the earlier ones, numbered.
    @Test(arguments: [1, 3]) func transactionGivesUpWithTheLastError(_ maxAttempts: Int) async throws {
        let db = makeDatabase()
        try await seed(db, [("k", "0")])
        let seen = Locked<[IsoKVError]>([])
        let retried = Locked<[RetryEvent]>([])
        var policy = RetryPolicy(maxAttempts: maxAttempts, baseDelay: .microseconds(10), maxDelay: .microseconds(50))
        policy.onRetry = { event in retried.withLock { $0.append(event) } }
        var thrown: IsoKVError?
        do {
            try await db.transaction(.snapshot, retry: policy) { tx in
                _ = try await tx.get("k")
                let n = seen.withLock { $0.count }
                try await db.put("k", Bytes.int(n + 1))  // another writer gets in first
                do { try await tx.put("k", "mine") } catch let e as IsoKVError {
                    seen.withLock { $0.append(e) }
                    throw e
                }
            }
        } catch let e as IsoKVError { thrown = e }
        let errors = seen.withLock { $0 }, events = retried.withLock { $0 }
        #expect(errors.count == maxAttempts)
        #expect(errors.allSatisfy { $0.code == .serializationFailure }, "\(errors)")
        #expect(thrown?.description == errors.last?.description, "thrown \(String(describing: thrown))")
        #expect(events.map(\.attempt) == Array(1..<maxAttempts))
        #expect(events.map(\.error.description) == errors.dropLast().map(\.description))
        #expect(try await value(db, "k") == Bytes.int(maxAttempts))  // none of the attempts' writes landed
        #expect(db.statistics().aborts.firstUpdaterWins == maxAttempts)
    }

    /// `update` whose every compare-and-set loses (the store below writes the key right after each read): it
    /// gives up after `maxAttempts` with IK412 naming the key, having called `transform` once per attempt, and
    /// wrote nothing itself.
    @Test func updateGivesUpAfterItsAttempts() async throws {
        let db = makeDatabase()
        try await seed(db, [("k", "0")])
        // Each single-key `get` is followed at once by another writer's write of the key, so that a
        // compare-and-set on the version just read always loses.
        let writes = Locked(0)
        let store = ForwardingStore(db) { key in
            let n = writes.withLock {
                $0 += 1
                return $0
            }
            try await db.put(key, Bytes("interfered \(n)"))
        }
        let calls = Locked(0)
        let retried = Locked<[RetryEvent]>([])
        var policy = RetryPolicy(maxAttempts: 4, baseDelay: .microseconds(10), maxDelay: .microseconds(50))
        policy.onRetry = { event in retried.withLock { $0.append(event) } }
        let e = await expectCode(.versionMismatch) {
            try await store.update("k", retry: policy) { old in
                calls.withLock { $0 += 1 }
                return Bytes((old?.string ?? "") + "!")
            }
        }
        #expect(e?.key == "k")
        #expect(e?.message.contains("4 attempts") == true, "\(String(describing: e))")
        #expect(calls.withLock { $0 } == 4)
        let events = retried.withLock { $0 }
        #expect(events.map(\.attempt) == [1, 2, 3])
        #expect(events.allSatisfy { $0.error.code == .versionMismatch }, "\(events)")
        #expect(try await value(db, "k") == "interfered 4")  // the interferer's last write; update wrote nothing
    }
}
