@_spi(Testing) import IsoKV
import IsoKVConformance
import IsoKVTestSupport
import Testing

/// The row-lock replays of the conformance suite (FOR SHARE / FOR UPDATE, NOWAIT, SKIP LOCKED, lock timeout,
/// deadlocks of two and three, upgrade deadlock) are IsoKVConformance's, run at every level by
/// `Conformance (Concurrent)`; the tests below check what the embedded engine adds to their verdicts, and the lock
/// behaviours the suite does not replay.
enum LockReplays {
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
                        let v1 = try #require(try await tx.lock(first, .forUpdate)?.int64)
                        if attempt == 1 { await barrier.arrive() }  // both hold their first lock
                        let v2 = try #require(try await tx.lock(second, .forUpdate)?.int64)
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

    /// An observation of a wait that never comes returns when its task is cancelled, and leaves no observer behind.
    @Test func waitUntilWaitingReturnsWhenCancelled() async throws {
        let db = makeDatabase()
        let t = try await db.begin(.readCommitted)
        let id = t.id
        // Bounded waits (`result(of:within:)`): if cancellation were ignored, the observation would never return,
        // and the test must fail rather than hang.
        let observer = Task { () async throws in await db.waitUntilWaiting(id, on: "x") }
        while db.lockWaitObserversForTesting == 0 { await Task.yield() }
        observer.cancel()
        #expect(try await result(of: observer, within: 20) != nil, "a cancelled observation did not return")
        #expect(db.lockWaitObserversForTesting == 0)
        // Already cancelled before it starts: returns at once, registers nothing.
        let early = Task { () async throws in
            withUnsafeCurrentTask { $0?.cancel() }
            await db.waitUntilWaiting(id, on: "x")
        }
        #expect(try await result(of: early, within: 20) != nil, "an observation begun cancelled did not return")
        #expect(db.lockWaitObserversForTesting == 0)
        try await t.rollback()
    }

    /// A test cancelled (by its time limit) while it awaits a spawned transaction that waits for a lock cancels that
    /// transaction: its wait ends with `CancellationError` instead of keeping the test, and the run, alive.
    @Test func awaitingASpawnedWaiterPassesCancellationOn() async throws {
        let db = makeDatabase()
        try await seed(db, [("x", "0")])
        let holder = try await db.begin(.readCommitted)
        try await holder.lock("x", .forUpdate)
        let waiter = try await spawn(db, .readCommitted) { tx in try await tx.lock("x", .forUpdate) }
        await db.waitUntilWaiting(waiter.id, on: "x")
        let awaiting = Task { try await waiter.value }
        awaiting.cancel()
        // Bounded: without the cancellation passed on, `awaiting` waits as long as `holder` holds the lock.
        await #expect(throws: CancellationError.self) { _ = try await result(of: awaiting, within: 20) }
        #expect(waiter.task.isCancelled)
        try await holder.rollback()  // lets the waiter through if it was not cancelled
    }

    @Test func skipLockedSingleRowLock() async throws {
        let db = makeDatabase()
        try await seed(db, [("x", "0")])
        let t1 = try await db.begin(.readCommitted)
        try await t1.lock("x", .forShare)
        let t2 = try await db.begin(.readCommitted)
        #expect(try await t2.lock("x", .forUpdate, wait: .skipLocked) == nil)  // skipped, not locked
        #expect(try await t2.lock("x", .forShare, wait: .skipLocked) == "0")  // share is compatible
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

    /// The `55P03` names the key and the holder, and is counted (not as an abort).
    @Test(arguments: IsolationLevel.allCases) func noWaitNamesTheHolder(_ level: IsolationLevel) async throws {
        let db = makeDatabase()
        let outcome = try await runReplay(.noWait, at: level, on: db)
        #expect(outcome.error?.key == "x")
        #expect(outcome.otherRole == .t1, "\(outcome.detail)")
        let s = db.statistics().aborts
        #expect(s.lockNotAvailable == 1 && s.deadlocks == 0 && s.serializationFailures == 0, "\(s)")
    }

    @Test func lockTimeoutIsCounted() async throws {
        let runner = ConformanceRunner(backend: EmbeddedBackend())
        let db = makeDatabase(lockTimeout: runner.storeOptions(for: .lockTimeout).lockTimeout)
        let outcome = try await runReplay(.lockTimeout, at: .readCommitted, on: db)
        #expect(outcome.error?.key == "x")
        #expect(outcome.error?.message.contains("lock timeout") == true, "\(outcome.detail)")
        #expect(db.statistics().aborts.lockNotAvailable == 1)
    }

    /// A lock timeout is a wait that ends: the request is queued first (observed), fails with `55P03` no earlier
    /// than the timeout, and leaves the queue — once the holder commits, the lock goes to the next requester, not to
    /// the timed-out transaction, which is still open and usable.
    /// `statistics().lockWaits` counts the requests that waited and how long: not an uncontended lock, not a no-wait
    /// failure, not a skip; a wait is counted when it starts and its time is added when it ends.
    @Test func lockWaitsAreCountedWithTheirTime() async throws {
        let db = makeDatabase()
        try await seed(db, [("x", "0"), ("y", "0")])
        let t1 = try await db.begin(.readCommitted)
        #expect(try await t1.lock("x", .forUpdate) == "0")  // uncontended: not a wait
        let other = try await db.begin(.readCommitted)
        await #expect(throws: IsoKVError.self) { try await other.lock("x", .forUpdate, wait: .noWait) }
        #expect(try await other.lock("x", .forUpdate, wait: .skipLocked) == nil)
        #expect(try await other.lock("y", .forUpdate) == "0")
        try await other.rollback()
        #expect(db.statistics().lockWaits == LockWaitStatistics())

        let t2 = try await spawn(db, .readCommitted) { tx in try await tx.put("x", "2") }
        await db.waitUntilWaiting(t2.id, on: "x")
        let held = Duration.milliseconds(50)
        try await Task.sleep(for: held)
        let during = db.statistics().lockWaits
        #expect(during.waits == 1 && during.waitNanoseconds == 0, "\(during)")
        try await t1.commit()
        try await t2.value
        let after = db.statistics().lockWaits
        #expect(after.waits == 1)
        #expect(after.waitNanoseconds >= 50_000_000, "waited \(after.waitNanoseconds) ns, held \(held)")
        expectConsistent(db)
    }

    @Test func lockTimeoutWaitsThenFailsAndLeavesTheQueue() async throws {
        // Long enough that the observer below is registered well before the timeout even on a loaded machine (a
        // request that never queues leaves `waitUntilWaiting` waiting: the suite's time limit fails the test).
        let timeout = Duration.milliseconds(400)
        let db = makeDatabase(lockTimeout: timeout)
        try await seed(db, [("x", "0")])
        let t1 = try await db.begin(.readCommitted)
        try await t1.put("x", "1")
        let (timedOut, timedOutCont) = AsyncStream.makeStream(of: (IsoKVError?, Duration).self)
        let (proceed, proceedCont) = AsyncStream.makeStream(of: Void.self)
        let t2 = try await spawn(db, .readCommitted) { tx -> IsoKVError? in
            let clock = ContinuousClock()
            let start = clock.now
            var failure: IsoKVError?
            do { try await tx.put("x", "2") } catch let e as IsoKVError { failure = e }
            timedOutCont.yield((failure, clock.now - start))
            timedOutCont.finish()
            for await _ in proceed { break }
            // Still usable after the timeout; the lock is now t3's.
            var second: IsoKVError?
            do { try await tx.lock("x", .forUpdate, wait: .noWait) } catch let e as IsoKVError { second = e }
            try await tx.rollback()
            return second
        }
        await db.waitUntilWaiting(t2.id, on: "x")  // it waits before it fails
        var it = timedOut.makeAsyncIterator()
        let (failure, elapsed) = try #require(await it.next())
        #expect(failure?.code == .lockNotAvailable, "\(String(describing: failure))")
        #expect(failure?.key == "x")
        #expect(elapsed >= timeout, "failed after \(elapsed), lock timeout \(timeout)")
        try await t1.commit()
        // Had t2's request stayed queued, t1's release would have granted it x, and this no-wait request would fail.
        let t3 = try await db.begin(.readCommitted)
        #expect(try await t3.lock("x", .forUpdate, wait: .noWait) == "1")
        proceedCont.yield()
        proceedCont.finish()
        let second = try await t2.value
        #expect(second?.code == .lockNotAvailable, "t2 got x after timing out: \(String(describing: second))")
        try await t3.commit()
        #expect(db.statistics().aborts.lockNotAvailable == 2)
        expectConsistent(db)
    }

    /// The victim's `40P01` names the key it asked for and the transaction it would have waited for (T1 in each
    /// replay), is retryable, and is counted once.
    @Test(arguments: IsolationLevel.allCases) func deadlockVictimNamesTheCycle(_ level: IsolationLevel) async throws {
        for (replay, key) in [(Replay.deadlockOfTwo, Bytes("a")), (.deadlockOfThree, "a"), (.upgradeDeadlock, "x")] {
            let db = makeDatabase()
            let outcome = try await runReplay(replay, at: level, on: db)
            #expect(outcome.error?.key == key, "\(replay)")
            #expect(outcome.otherRole == .t1, "\(replay): \(outcome.detail)")
            #expect(outcome.error?.isRetryable == true)
            #expect(db.statistics().aborts.deadlocks == 1, "\(replay)")
        }
    }

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
            // Only read uncommitted sees t1's uncommitted write; every level reads without waiting for its lock.
            let expected: Bytes = level == .readUncommitted ? "1" : "0"
            let t = try await db.begin(level)
            #expect(try await t.get("x") == expected, "\(level)")
            let rows = try await t.scan()
            #expect(rows.map(\.key) == ["x"] && rows.map(\.value) == [expected], "\(level): \(rows)")
            try await t.commit()
        }
        #expect(try await db.get("x")?.value == "0")
        try await t1.commit()
    }
}
