@_spi(Testing) import IsoKV
import Testing

enum LockReplays {
    static func noWait<S: TestableStore>(_ store: S) async throws {
        try await seed(store, [("x", "0")])
        let t1 = try await store.begin(.readCommitted)
        try await t1.lock("x", .forUpdate)
        let t2 = try await store.begin(.readCommitted)
        let e = await expectCode(.lockNotAvailable) { try await t2.lock("x", .forUpdate, wait: .noWait) }
        #expect(e?.key == "x")
        #expect(e?.otherTransaction == t1.id)
        // A statement-level failure: t2 is still usable.
        #expect(try await t2.get("x") == "0")
        try await t2.commit()
        try await t1.commit()
    }

    /// Queue consumers: each takes the first job nobody else has locked.
    static func skipLocked<S: TestableStore>(_ store: S) async throws {
        try await seed(store, [("jobs/1", "a"), ("jobs/2", "b"), ("jobs/3", "c"), ("other", "x")])
        var txs: [S.Transaction] = []
        var taken: [[Bytes]] = []
        for _ in 0..<4 {
            let tx = try await store.begin(.readCommitted)
            taken.append(try await tx.scan(.prefix("jobs/"), limit: 1, lock: .forUpdate, wait: .skipLocked).map(\.key))
            txs.append(tx)
        }
        #expect(taken == [["jobs/1"], ["jobs/2"], ["jobs/3"], []])
        // A consumer deletes its job and commits; a new consumer then finds job 1 gone and jobs 2, 3 still locked.
        try await txs[0].delete("jobs/1")
        try await txs[0].commit()
        let late = try await store.begin(.readCommitted)
        #expect(try await late.scan(.prefix("jobs/"), limit: 5, lock: .forUpdate, wait: .skipLocked).isEmpty)
        await expectCode(.lockNotAvailable) {
            try await late.scan(.prefix("jobs/"), limit: 5, lock: .forUpdate, wait: .noWait)
        }
        for tx in txs.dropFirst() { try await tx.rollback() }
        #expect(try await late.scan(.prefix("jobs/"), lock: .forUpdate, wait: .skipLocked).map(\.key)
                == ["jobs/2", "jobs/3"])
        try await late.commit()
    }

    /// Share locks coexist, block an update lock and writers until every sharer has ended.
    static func shareVersusUpdate<S: TestableStore>(_ store: S) async throws {
        try await seed(store, [("x", "0")])
        let s1 = try await store.begin(.readCommitted)
        let s2 = try await store.begin(.readCommitted)
        #expect(try await s1.lock("x", .forShare) == "0")
        #expect(try await s2.lock("x", .forShare, wait: .noWait) == "0")
        let writer = try await spawn(store, .readCommitted) { tx in
            try await tx.put("x", "1")
            try await tx.commit()
        }
        await store.waitUntilWaiting(writer.id, on: "x")
        try await s1.commit()
        // Still blocked by s2: a no-wait update lock fails too.
        let probe = try await store.begin(.readCommitted)
        await expectCode(.lockNotAvailable) { try await probe.lock("x", .forUpdate, wait: .noWait) }
        try await probe.rollback()
        #expect(try await value(store, "x") == "0")
        try await s2.commit()
        try await writer.value
        #expect(try await value(store, "x") == "1")
    }

    static func lockTimeout<S: TestableStore>(_ store: S) async throws {
        try await seed(store, [("x", "0")])
        let t1 = try await store.begin(.readCommitted)
        try await t1.put("x", "1")
        let t2 = try await store.begin(.readCommitted)
        let e = await expectCode(.lockNotAvailable) { try await t2.put("x", "2") }
        #expect(e?.key == "x")
        #expect(try await t2.get("x") == "0")   // t2 survives the timeout
        try await t1.commit()
        try await t2.put("x", "2")              // and can retry once the lock is free
        try await t2.commit()
        #expect(try await value(store, "x") == "2")
    }

    /// T1 holds a and waits for b; T2 holds b and asks for a: T2 is the victim (40P01), T1 proceeds.
    static func deadlockOfTwo<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("a", "0"), ("b", "0")])
        let t2 = try await store.begin(level)
        try await t2.put("b", "2")
        let t1 = try await spawn(store, level) { tx in
            try await tx.put("a", "1")
            try await tx.put("b", "1")
            try await tx.commit()
        }
        // Wait until t1 holds a and waits for b.
        await store.waitUntilWaiting(t1.id, on: "b")
        let e = await expectCode(.deadlockDetected) { try await t2.put("a", "2") }
        #expect(e?.key == "a")
        #expect(e?.otherTransaction == t1.id)
        #expect(e?.isRetryable == true)
        try await t1.value                      // the victim's locks are gone: t1 proceeds
        await expectCode(.transactionAborted) { try await t2.get("a") }
        await expectCode(.transactionAborted) { try await t2.commit() }
        try await t2.rollback()
        #expect(try await value(store, "a") == "1")
        #expect(try await value(store, "b") == "1")   // t2's write of b was never visible
    }

    /// T1 → T2 → T3 → T1: the transaction closing the cycle (T3) is the victim; T2 then T1 proceed.
    static func deadlockOfThree<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("a", "0"), ("b", "0"), ("c", "0")])
        let t3 = try await store.begin(level)
        try await t3.lock("c", .forUpdate)
        let t2 = try await spawn(store, level) { tx in
            try await tx.lock("b", .forUpdate)
            try await tx.put("c", "2")          // waits for t3
            try await tx.commit()
        }
        await store.waitUntilWaiting(t2.id, on: "c")
        let t1 = try await spawn(store, level) { tx in
            try await tx.lock("a", .forUpdate)
            try await tx.put("b", "1")          // waits for t2
            try await tx.commit()
        }
        await store.waitUntilWaiting(t1.id, on: "b")
        let e = await expectCode(.deadlockDetected) { try await t3.put("a", "3") }
        #expect(e?.key == "a")
        #expect(e?.otherTransaction == t1.id)
        try await t2.value
        try await t1.value
        try await t3.rollback()
        #expect(try await value(store, "a") == "0")
        #expect(try await value(store, "b") == "1")
        #expect(try await value(store, "c") == "2")
    }

    /// Two share holders both upgrade: the second upgrade closes a cycle.
    static func upgradeDeadlock<S: TestableStore>(_ store: S) async throws {
        try await seed(store, [("x", "0")])
        let t2 = try await store.begin(.readCommitted)
        try await t2.lock("x", .forShare)
        let t1 = try await spawn(store, .readCommitted) { tx in
            try await tx.lock("x", .forShare)
            try await tx.put("x", "1")
            try await tx.commit()
        }
        await store.waitUntilWaiting(t1.id, on: "x")
        await expectCode(.deadlockDetected) { try await t2.put("x", "2") }
        try await t1.value
        #expect(try await value(store, "x") == "1")
    }
}

extension LockReplays {
    /// At snapshot, a waiter whose holder only locked the row (no new version) proceeds.
    static func lockOnlyHolderLetsSnapshotWriterProceed<S: TestableStore>(_ store: S) async throws {
        try await seed(store, [("x", "0")])
        let t1 = try await store.begin(.snapshot)
        #expect(try await t1.lock("x", .forUpdate) == "0")
        let t2 = try await spawn(store, .snapshot) { tx in
            try await tx.put("x", "2")
            try await tx.commit()
        }
        await store.waitUntilWaiting(t2.id, on: "x")
        try await t1.commit()
        try await t2.value
        #expect(try await value(store, "x") == "2")
    }

    /// A cycle through queue order: H shares k; W1 queues for update on k (waits for H); W2, holding m, queues for
    /// share on k behind W1 (compatible with H, but FIFO: it waits for W1); H asks for m → H → W2 → W1 → H.
    static func deadlockThroughQueueOrder<S: TestableStore>(_ store: S) async throws {
        try await seed(store, [("k", "0"), ("m", "0")])
        let h = try await store.begin(.readCommitted)
        try await h.lock("k", .forShare)
        let w1 = try await spawn(store, .readCommitted) { tx in
            try await tx.lock("k", .forUpdate)
            try await tx.commit()
        }
        await store.waitUntilWaiting(w1.id, on: "k")
        let (lockedM, lockedMCont) = AsyncStream.makeStream(of: Void.self)
        let w2 = try await spawn(store, .readCommitted) { tx in
            try await tx.lock("m", .forUpdate)
            lockedMCont.yield()
            try await tx.lock("k", .forShare)
            try await tx.commit()
        }
        var it = lockedM.makeAsyncIterator()
        _ = await it.next()
        await store.waitUntilWaiting(w2.id, on: "k")
        let e = await expectCode(.deadlockDetected) { try await h.lock("m", .forUpdate) }
        #expect(e?.otherTransaction == w2.id)
        try await w1.value
        try await w2.value
        try await h.rollback()
    }

    /// A deadlock inside `transaction {}` with retry: the victim is retried and both transfers land.
    static func deadlockVictimIsRetried<S: TestableStore>(_ store: S) async throws {
        try await seed(store, [("a", "0"), ("b", "0")])
        let barrier = Barrier(2)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (first, second) in [(Bytes("a"), Bytes("b")), (Bytes("b"), Bytes("a"))] {
                group.addTask {
                    var attempt = 0
                    try await store.transaction(.readCommitted, retry: RetryPolicy(maxAttempts: 5)) { tx in
                        attempt += 1
                        let v1 = try await tx.lock(first, .forUpdate)!.int64!
                        if attempt == 1 { await barrier.arrive() }   // both hold their first lock
                        let v2 = try await tx.lock(second, .forUpdate)!.int64!
                        try await tx.put(first, Bytes(v1 + 1))
                        try await tx.put(second, Bytes(v2 + 1))
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await value(store, "a") == "2")
        #expect(try await value(store, "b") == "2")
    }
}

@Suite("Row locks (Concurrent)", .timeLimit(.minutes(1)))
struct LockConcurrentTests {
    @Test func lockOnlyHolderLetsSnapshotWriterProceed() async throws {
        try await LockReplays.lockOnlyHolderLetsSnapshotWriterProceed(makeDatabase())
    }
    @Test func deadlockThroughQueueOrder() async throws {
        try await LockReplays.deadlockThroughQueueOrder(makeDatabase())
    }
    @Test func deadlockVictimIsRetried() async throws {
        try await LockReplays.deadlockVictimIsRetried(makeDatabase())
    }

    @Test func skipLockedSingleRowLock() async throws {
        let db = makeDatabase()
        try await seed(db, [("x", "0")])
        let t1 = try await db.begin(.readCommitted)
        try await t1.lock("x", .forShare)
        let t2 = try await db.begin(.readCommitted)
        #expect(try await t2.lock("x", .forUpdate, wait: .skipLocked) == nil)     // skipped, not locked
        #expect(try await t2.lock("x", .forShare, wait: .skipLocked) == "0")      // share is compatible
        try await t2.commit()
        try await t1.commit()
    }

    /// The snapshot of a `.snapshot` transaction is taken at its first operation, not at `begin`.
    @Test func snapshotIsTakenAtFirstOperation() async throws {
        let db = makeDatabase()
        try await seed(db, [("x", "0")])
        let t = try await db.begin(.snapshot)
        try await db.put("x", "1")
        #expect(try await t.get("x") == "1")
        try await db.put("x", "2")
        #expect(try await t.get("x") == "1")
        try await t.commit()
    }

    @Test func noWait() async throws {
        let db = makeDatabase()
        try await LockReplays.noWait(db)
        #expect(db.statistics().aborts.lockNotAvailable == 1)
    }
    @Test func skipLocked() async throws { try await LockReplays.skipLocked(makeDatabase()) }
    @Test func shareVersusUpdate() async throws { try await LockReplays.shareVersusUpdate(makeDatabase()) }
    @Test func lockTimeout() async throws {
        try await LockReplays.lockTimeout(makeDatabase(lockTimeout: .milliseconds(30)))
    }
    @Test(arguments: IsolationLevel.allCases) func deadlockOfTwo(_ level: IsolationLevel) async throws {
        let db = makeDatabase()
        try await LockReplays.deadlockOfTwo(db, level)
        #expect(db.statistics().aborts.deadlocks == 1)
    }
    @Test(arguments: IsolationLevel.allCases) func deadlockOfThree(_ level: IsolationLevel) async throws {
        try await LockReplays.deadlockOfThree(makeDatabase(), level)
    }
    @Test func upgradeDeadlock() async throws { try await LockReplays.upgradeDeadlock(makeDatabase()) }

    @Test func cancellingAWaiterLeavesTheQueue() async throws {
        let db = makeDatabase()
        let t1 = try await db.begin(.readCommitted)
        try await t1.put("x", "1")
        let waiter = try await spawn(db, .readCommitted) { tx in try await tx.put("x", "2") }
        await db.waitUntilWaiting(waiter.id, on: "x")
        waiter.task.cancel()
        let r = await waiter.result
        #expect(r.failure is CancellationError)
        // The cancelled request left the queue: a new no-wait request only sees t1.
        try await t1.commit()
        let t3 = try await db.begin(.readCommitted)
        #expect(try await t3.lock("x", .forUpdate, wait: .noWait) == "1")
        try await t3.commit()
    }

    @Test func readOnlyTransactionsRejectWritesAndLocks() async throws {
        let db = makeDatabase()
        try await seed(db, [("x", "0")])
        let tx = try await db.begin(.snapshot, readOnly: true)
        #expect(try await tx.get("x") == "0")
        await expectCode(.readOnlyTransaction) { try await tx.put("x", "1") }
        await expectCode(.readOnlyTransaction) { try await tx.delete("x") }
        await expectCode(.readOnlyTransaction) { try await tx.lock("x", .forShare) }
        await expectCode(.readOnlyTransaction) { try await tx.scan(.all, lock: .forUpdate) }
        try await tx.commit()
    }

    @Test func plainReadsNeverWait() async throws {
        let db = makeDatabase()
        try await seed(db, [("x", "0")])
        let t1 = try await db.begin(.readCommitted)
        try await t1.lock("x", .forUpdate)
        try await t1.put("x", "1")
        for level in IsolationLevel.allCases {
            let t = try await db.begin(level)
            _ = try await t.get("x")
            _ = try await t.scan()
            try await t.commit()
        }
        #expect(try await db.get("x")?.value == "0")
        try await t1.commit()
    }
}
