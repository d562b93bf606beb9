import Foundation
@_spi(Testing) import IsoKV
import IsoKVStorage
import Testing
import IsoKVTestSupport

/// Asserts that `db.check(mode)` reports exactly `count` findings, all of kind `kind` (about `key` and
/// `transaction` when given); returns them.
@discardableResult
func expectOnly(
    _ kind: CheckFinding.Kind, _ db: Database, _ mode: Database.CheckMode = .quiescent, count: Int = 1,
    key: Bytes? = nil, transaction: TransactionID? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [CheckFinding] {
    let report = db.check(mode)
    #expect(
        report.findings.map(\.kind) == Array(repeating: kind, count: count), "\(report)",
        sourceLocation: sourceLocation)
    if let key { #expect(report.findings.allSatisfy { $0.key == key }, "\(report)", sourceLocation: sourceLocation) }
    if let transaction {
        #expect(
            report.findings.allSatisfy { $0.transaction == transaction }, "\(report)", sourceLocation: sourceLocation)
    }
    return report.findings
}

/// Each invariant `Database.check` verifies, broken on purpose through `_testingCorrupt` (one structure, under its
/// lock): the checker must report exactly that finding. Every test first checks that the setup itself is clean.
@Suite("Consistency checker")
struct CheckTests {
    // MARK: One chain

    @Test func versionsOutOfOrder() async throws {
        let db = makeDatabase()
        try await db.put("k", "1")
        let reader = try await db.begin(.snapshot)
        _ = try await reader.get("k")  // holds version 1
        try await db.put("k", "2")
        expectConsistent(db)
        db._testingCorrupt(.reorderVersions(key: "k"))
        expectOnly(.versionOrder, db, key: "k")
        try await reader.commit()
    }

    @Test func versionAfterTheLastCommit() async throws {
        let db = makeDatabase()
        try await db.put("k", "1")
        expectConsistent(db)
        db._testingCorrupt(.moveNewestVersionPastLastCommit(key: "k"))
        expectOnly(.versionAfterLastCommit, db, key: "k")
        expectOnly(.versionAfterLastCommit, db, .concurrent, key: "k")
    }

    /// On a durable database `published < last` is allowed (a commit waiting for its fsync), but only while the
    /// writer holds the row: a renumbered version nobody holds is reported.
    @Test func unpublishedVersionWithoutItsRowLock() async throws {
        let dir = TemporaryDirectory("check-unpublished")
        defer { dir.remove() }
        let db = try await Database.open(path: dir.path, options: durableOptions(.unsafeNoSync))
        let v = try await db.put("k", "1")
        expectConsistent(db)
        db._testingCorrupt(.unpublishNewestVersion(key: "k"))
        let found = expectOnly(.unpublishedVersionUnlocked, db, .concurrent, key: "k")
        #expect(found.first?.message.contains("above published \(v)") == true)
        await db.close()
    }

    @Test func pendingWriteWithoutTheExclusiveLock() async throws {
        let db = makeDatabase()
        let tx = try await db.begin(.snapshot)
        try await tx.put("k", "1")
        expectConsistent(db)
        db._testingCorrupt(.dropExclusiveKeepingPending(key: "k"))
        expectOnly(.pendingWriteWithoutLock, db, .concurrent, key: "k", transaction: tx.id)
        try await tx.rollback()
    }

    @Test func exclusiveAndSharedHoldersTogether() async throws {
        let db = makeDatabase()
        let tx = try await db.begin(.readCommitted)
        try await tx.lock("k", .forUpdate)
        expectConsistent(db)
        db._testingCorrupt(.addExclusiveHolderToShared(key: "k"))
        expectOnly(.conflictingLockHolders, db, key: "k", transaction: tx.id)
        try await tx.rollback()
    }

    /// A retired chain must be empty. (A retired chain still reachable is a second, quiescent-only finding: the
    /// concurrent mode shows the first alone.)
    @Test func retiredChainThatIsNotEmpty() async throws {
        let db = makeDatabase()
        try await db.put("k", "1")
        expectConsistent(db)
        db._testingCorrupt(.markRetired(key: "k"))
        expectOnly(.retiredChainNotEmpty, db, .concurrent, key: "k")
        #expect(Set(db.check().findings.map(\.kind)) == [.retiredChainNotEmpty, .retiredChainReachable])
    }

    // MARK: Clocks and snapshots

    @Test func publishedAheadOfTheLastCommit() async throws {
        let db = makeDatabase()
        try await db.put("k", "1")
        expectConsistent(db)
        db._testingCorrupt(.publishAheadOfLastCommit)
        expectOnly(.oracleClock, db, .concurrent)
    }

    @Test func snapshotRegisteredAbovePublished() async throws {
        let db = makeDatabase()
        let open = try await db.begin(.readCommitted)  // so that the extra registration is not also a leak
        expectConsistent(db)
        db._testingCorrupt(.registerSnapshotAheadOfPublished)
        expectOnly(.snapshotRegistry, db)
        try await open.rollback()
    }

    @Test func snapshotThatOutlivedItsTransaction() async throws {
        let db = makeDatabase()
        let reader = try await db.begin(.snapshot)
        _ = try await reader.get("k")  // one open transaction, one registered snapshot: fine
        expectConsistent(db)
        try await reader.commit()
        db._testingCorrupt(.registerSnapshotWithoutTransaction)
        expectOnly(.snapshotWithoutTransaction, db)
        #expect(db.check(.concurrent).isConsistent)  // needs quiescence: not in the concurrent mode
    }

    // MARK: Directory and scan index

    @Test func keyMissingFromTheScanIndex() async throws {
        let db = makeDatabase()
        try await db.put("k", "1")
        expectConsistent(db)
        db._testingCorrupt(.removeFromIndex(key: "k"))
        expectOnly(.keyNotIndexed, db, key: "k")
        #expect(db.check(.concurrent).isConsistent)
    }

    @Test func indexedChainMissingFromTheDirectory() async throws {
        let db = makeDatabase()
        try await db.put("k", "1")
        expectConsistent(db)
        db._testingCorrupt(.removeFromDirectory(key: "k"))
        expectOnly(.indexedChainNotInDirectory, db, key: "k")
    }

    @Test func retiredChainStillReachable() async throws {
        let db = makeDatabase()
        try await db.put("a", "1")
        expectConsistent(db)
        db._testingCorrupt(.insertRetiredChain(key: "ghost"))
        expectOnly(.retiredChainReachable, db, key: "ghost")
        #expect(try await db.transaction(.snapshot) { try await $0.scan(.all) }.map(\.key) == ["a"])
    }

    // MARK: Transactions, locks and GC

    @Test func lockAndPendingWriteOfAnEndedTransaction() async throws {
        let db = makeDatabase()
        let tx = try await db.begin(.snapshot)
        try await tx.put("k", "1")
        expectConsistent(db)
        db._testingCorrupt(.forgetTransaction(tx.id))
        let found = expectOnly(.lockOfEndedTransaction, db, key: "k", transaction: tx.id)
        #expect(found.first?.message.contains("holds forUpdate, owns the pending write") == true)
        try await tx.rollback()
        expectConsistent(db)
    }

    @Test func versionsNobodyWillCollect() async throws {
        let db = makeDatabase()
        try await db.put("k", "1")
        let reader = try await db.begin(.snapshot)
        _ = try await reader.get("k")
        try await db.put("k", "2")  // version 1 is kept for the reader: the chain is filed
        expectConsistent(db)
        db._testingCorrupt(.removeFromGCBacklog(key: "k"))
        expectOnly(.versionsNotFiledForGC, db, key: "k")
        try await reader.commit()
    }

    // MARK: SSI

    /// T1 reads k, T2 writes it: the edge T1 →rw T2 is kept on both records.
    @Test func rwConflictKeptOnOneEndOnly() async throws {
        let db = makeDatabase()
        try await db.put("k", "0")
        let t1 = try await db.begin(.serializable), t2 = try await db.begin(.serializable)
        _ = try await t1.get("other")  // (a first read is tracked late; the second one at once)
        _ = try await t1.get("k")
        _ = try await t2.get("other")
        try await t2.put("k", "1")
        expectConsistent(db)
        db._testingCorrupt(.dropConflictIn(reader: t1.id, writer: t2.id))
        expectOnly(.ssiEdgeAsymmetric, db, .concurrent, key: "k", transaction: t1.id)
        try await t1.rollback()
        try await t2.rollback()
    }

    @Test func doomedFlagWithoutAReason() async throws {
        let db = makeDatabase()
        let t = try await db.begin(.serializable)
        _ = try await t.get("k")
        expectConsistent(db)
        db._testingCorrupt(.doomWithoutReason(t.id))
        expectOnly(.ssiRecordInconsistent, db, .concurrent, transaction: t.id)
        await expectCode(.serializationFailure) { try await t.get("k") }
        expectConsistent(db)  // the abort removed the record
    }

    @Test func rangeLockWithoutARecord() async throws {
        let db = makeDatabase()
        expectConsistent(db)
        db._testingCorrupt(.addRangeLock(owner: TransactionID(rawValue: 999_999)))
        expectOnly(.ssiRangeLockOrphaned, db, .concurrent, transaction: TransactionID(rawValue: 999_999))
    }

    @Test func activeReadWriteSetMissingATransaction() async throws {
        let db = makeDatabase()
        let t = try await db.begin(.serializable)
        _ = try await t.get("k")
        expectConsistent(db)
        db._testingCorrupt(.removeFromActiveReadWrite(t.id))
        expectOnly(.ssiActiveSetMismatch, db, .concurrent, transaction: t.id)
        try await t.rollback()
    }

    @Test func preparedRecordMissingFromThePreparedList() async throws {
        let db = makeDatabase()
        let t = try await db.begin(.serializable)
        try await t.put("k", "1")
        expectConsistent(db, .concurrent)
        db._testingCorrupt(.markPreparedUnlisted(t.id))
        expectOnly(.ssiRecordInconsistent, db, .concurrent, transaction: t.id)
    }

    @Test func lazyReadOnlySlotWithoutTransaction() async throws {
        let db = makeDatabase()
        let writer = try await db.begin(.serializable)
        try await writer.put("w", "1")  // so that the read-only one below is not safe at begin
        let ro = try await db.begin(.serializable, readOnly: true)
        _ = try await ro.get("k")  // lazy: holds a slot, which one open transaction explains
        expectConsistent(db)
        try await ro.commit()
        try await writer.commit()
        expectConsistent(db)
        db._testingCorrupt(.claimLazySlotWithoutTransaction)
        expectOnly(.ssiActiveSetMismatch, db)
    }

    @Test func ssiRecordOfAnEndedTransaction() async throws {
        let db = makeDatabase()
        let t = try await db.begin(.serializable)
        _ = try await t.get("k")
        expectConsistent(db)
        db._testingCorrupt(.forgetTransaction(t.id))
        expectOnly(.ssiRecordOfEndedTransaction, db, transaction: t.id)
        try await t.rollback()
        expectConsistent(db)
    }

    @Test func pointLockWithoutAnOwner() async throws {
        let db = makeDatabase()
        expectConsistent(db)
        db._testingCorrupt(.addPointLock(key: "k", owner: TransactionID(rawValue: 999_999)))
        expectOnly(.ssiPointLockOrphaned, db, key: "k", transaction: TransactionID(rawValue: 999_999))
    }

    // MARK: Modes, strict mode, data directories

    @Test func everyKindIsCoveredAndConcurrentModeOmitsTheQuiescentOnes() {
        #expect(CheckFinding.Kind.allCases.count == 22)
        #expect(CheckFinding.Kind.allCases.filter(\.requiresQuiescence).count == 9)
        #expect(makeDatabase().check(.concurrent).mode == .concurrent)
    }

    /// Strict mode: the commit after which the checker finds something throws XX000, and has taken effect.
    @Test func strictModeFailsTheCommitThatFindsAProblem() async throws {
        let db = Database.inMemory(Database.Configuration(checkAfterEveryCommit: true))
        try await db.put("a", "1")
        try await db.transaction { tx in try await tx.put("b", "1") }
        db._testingCorrupt(.moveNewestVersionPastLastCommit(key: "a"))
        let e = await expectCode(.internalError) { try await db.put("c", "1") }
        #expect(e?.message.contains("versionAfterLastCommit") == true)
        #expect(e?.isRetryable == false)
        #expect(try await value(db, "c") == "1")  // committed all the same
        await expectCode(.internalError) { try await db.transaction(.snapshot) { tx in try await tx.put("d", "1") } }
        #expect(try await value(db, "d") == "1")  // and not retried
    }

    /// `Database.check(path:)`: a store whose files are valid but whose checkpoint holds a version above its own
    /// commit number (what a buggy checkpoint writer could produce) recovers into an inconsistent engine.
    @Test func dataDirectoryCheckFindsAVersionAboveTheCheckpoint() async throws {
        let good = TemporaryDirectory("check-dir-good"), bad = TemporaryDirectory("check-dir-bad")
        defer { good.remove(); bad.remove() }
        let db = try await Database.open(path: good.path, options: durableOptions(.unsafeNoSync))
        for i in 0..<10 { try await db.put(Bytes("k\(i % 4)"), Bytes("v\(i)")) }
        await db.close()
        let (summary, report) = try Database.check(path: good.path)
        #expect(summary.liveKeys == 4 && summary.lastCommit == 10)
        #expect(report.isConsistent, "\(report)")
        #expect(report.chains == 4)

        try await writeCheckpointWithAFutureVersion(bad.path)
        let (_, badReport) = try Database.check(path: bad.path)
        #expect(badReport.findings.map(\.kind) == [.versionAfterLastCommit], "\(badReport)")
        #expect(badReport.findings.first?.key == "late")
    }
}

/// A store holding a checkpoint at commit 3 whose entry "late" has version 9 (valid CRCs: recovery accepts it).
func writeCheckpointWithAFutureVersion(_ path: String) async throws {
    let (log, _) = try await WriteAheadLog.open(directory: path, options: WALOptions(durability: .fsync))
    let entries = [
        KeyWrite(key: Array("early".utf8), value: Array("x".utf8), version: 2),
        KeyWrite(key: Array("late".utf8), value: Array("y".utf8), version: 9)
    ]
    try await log.checkpoint(sequence: 3, entries: AsyncEntries(entries))
    await log.close()
}

/// The invariants about lock waits (they need a transaction suspended in a real wait), and whole databases under
/// concurrent load.
@Suite("Consistency checker (Concurrent)", .timeLimit(.minutes(3)))
struct CheckConcurrentTests {
    /// A holds k, B waits for it; returns B's task (it commits once granted).
    static func holderAndWaiter(_ db: Database) async throws -> (Transaction, Spawned<Void>) {
        let a = try await db.begin(.readCommitted)
        try await a.lock("k", .forUpdate)
        let b = try await spawn(db, .readCommitted) { tx in
            try await tx.lock("k", .forUpdate)
            try await tx.commit()
        }
        await db.waitUntilWaiting(b.id, on: "k")
        expectConsistent(db)  // a waiting transaction is a state the design allows
        return (a, b)
    }

    @Test func waiterThatCouldBeGranted() async throws {
        let db = makeDatabase()
        let (a, b) = try await Self.holderAndWaiter(db)
        db._testingCorrupt(.releaseWithoutGranting(key: "k"))
        expectOnly(.grantableWaiter, db, .concurrent, key: "k", transaction: b.id)
        try await a.rollback()  // its release grants the waiter
        try await b.value
        expectConsistent(db)
    }

    @Test func waiterOfAnEndedTransaction() async throws {
        let db = makeDatabase()
        let (a, b) = try await Self.holderAndWaiter(db)
        db._testingCorrupt(.forgetTransaction(b.id))
        let found = expectOnly(.lockOfEndedTransaction, db, key: "k", transaction: b.id)
        #expect(found.first?.message.contains("waits for forUpdate") == true)
        try await a.rollback()
        try await b.value
    }

    @Test func waitMissingFromTheWaitForGraph() async throws {
        let db = makeDatabase()
        let (a, b) = try await Self.holderAndWaiter(db)
        db._testingCorrupt(.forgetWait(b.id))
        expectOnly(.waitGraphMismatch, db, key: "k", transaction: b.id)
        try await a.rollback()
        try await b.value
        expectConsistent(db)
    }

    // MARK: A busy database

    static let accounts = (0..<8).map { Bytes("acct/\($0)") }

    /// One random operation: every level, row locks in both modes with every wait policy, deadlock-prone lock
    /// orders, write skew, savepoints rolled back, locking scans, CAS and atomic single-key operations, keys
    /// created and deleted, read-only and deferrable serializable transactions, long readers rolled back.
    static func randomOperation(_ db: Database, _ rng: inout SplitMix64, _ n: Int) async throws {
        let levels: [IsolationLevel] = [.readUncommitted, .readCommitted, .snapshot, .serializable]
        let level = levels[Int(rng.next() % 4)]
        let a = accounts[Int(rng.next() % 8)], b = accounts[Int(rng.next() % 8)]
        let retry = RetryPolicy(maxAttempts: 100_000, baseDelay: .microseconds(20), maxDelay: .milliseconds(1))
        switch rng.next() % 10 {
        case 0, 1:  // transfer with explicit locks in random order: deadlocks (40P01) and 40001, retried
            try await db.transaction(level, retry: retry) { tx in
                try await tx.lock(a, .forUpdate)
                await Task.yield()
                try await tx.lock(b, .forUpdate)
                let x = try await tx.get(a)?.int64 ?? 0, y = try await tx.get(b)?.int64 ?? 0
                if a != b {
                    try await tx.put(a, Bytes(x - 1))
                    try await tx.put(b, Bytes(y + 1))
                }
            }
        case 2:  // read two, write one: write skew (SSI aborts it at .serializable)
            try await db.transaction(rng.next() % 2 == 0 ? .serializable : .snapshot, retry: retry) { tx in
                let x = try await tx.get(a)?.int64 ?? 0, y = try await tx.get(b)?.int64 ?? 0
                await Task.yield()
                try await tx.put(a, Bytes(x + (y % 3) - 1))
            }
        case 3:  // savepoint: later writes and locks undone, earlier ones kept
            try await db.transaction(level, retry: retry) { tx in
                try await tx.put(a, Bytes((try await tx.get(a)?.int64 ?? 0) + 1))
                let sp = try await tx.savepoint()
                await Task.yield()
                try await tx.put(b, "scratch")
                try await tx.lock(Bytes("extra/\(n % 5)"), .forShare)
                try await tx.rollback(to: sp)
            }
        case 4:  // locking scan with share locks, skipping locked rows
            try await db.transaction(level, retry: retry) { tx in
                _ = try await tx.scan(.prefix("acct/"), limit: 3, lock: .forShare, wait: .skipLocked)
                await Task.yield()
            }
        case 5:  // no-wait lock, then roll back
            let tx = try await db.begin(level)
            do {
                try await tx.lock(a, .forUpdate, wait: .noWait)
            } catch let e as IsoKVError where e.code == .lockNotAvailable || e.isRetryable {}
            try await tx.rollback()
        case 6:  // keys created and deleted: GC retires their chains, inserts may find them (23505)
            let k = Bytes("churn/\(rng.next() % 4)")
            switch rng.next() % 3 {
            case 0: try await db.put(k, "x")
            case 1: try await db.delete(k)
            default:
                try await db.transaction(level, retry: retry) { tx in
                    do { try await tx.insert(k, "y") } catch let e as IsoKVError where e.code == .uniqueViolation {}
                    await Task.yield()
                }
            }
        case 7:  // single-key operations
            if rng.next() % 2 == 0 {
                _ = try await db.increment("counter", by: 1)
            } else {
                _ = try await db.update("doc", maxAttempts: 100_000) { old in Bytes((old?.int64 ?? 0) + 1) }
            }
        case 8:  // read-only serializable (sometimes deferrable: waits for a safe snapshot, never aborts)
            if rng.next() % 3 == 0 {
                let tx = try await db.begin(.serializable, readOnly: true, deferrable: true)
                _ = try await tx.scan(.prefix("acct/"))
                try await tx.commit()
            } else {
                _ = try await db.transaction(.serializable, readOnly: true, retry: retry) { tx in
                    try await tx.scan(.prefix("acct/")).count + (try await tx.get(a) == nil ? 0 : 1)
                }
            }
        default:  // a reader that holds its snapshot across other tasks' commits, then rolls back
            let tx = try await db.begin(rng.next() % 2 == 0 ? .snapshot : .readUncommitted)
            _ = try await tx.get(a)
            await Task.yield()
            _ = try await tx.scan(.all)
            try await tx.rollback()
        }
    }

    /// A busy database in strict mode (every commit runs the concurrent check and would throw XX000), with a
    /// monitor running the concurrent check throughout: nothing is ever found. Then, quiescent with a lock holder,
    /// a waiter, a serializable writer and a deferrable reader still open, the full check finds nothing; nor after
    /// they end.
    @Test func busyDatabaseChecksClean() async throws {
        let db = Database.inMemory(Database.Configuration(checkAfterEveryCommit: true))
        try await seed(db, Self.accounts.map { ($0, Bytes(Int64(100))) })
        let workers = 6, perWorker = 250
        let problems = try await withThrowingTaskGroup(of: [String].self) { group in
            for w in 0..<workers {
                group.addTask {
                    var rng = SplitMix64(seed: UInt64(w) &+ 0xC0FFEE)
                    for i in 0..<perWorker { try await Self.randomOperation(db, &rng, i) }
                    return []
                }
            }
            group.addTask {
                var found: [String] = []
                for _ in 0..<150 {
                    let r = db.check(.concurrent)
                    if !r.isConsistent { found.append(r.description) }
                    try await Task.sleep(for: .milliseconds(2))
                }
                return found
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(problems.isEmpty, "\(problems.prefix(3))")
        expectConsistent(db)
        #expect(db.statistics().aborts.serializationFailures + db.statistics().aborts.deadlocks > 0)

        // Quiescent, transactions open: a holder with a pending write and its waiter, a serializable writer with
        // SIREAD locks, a deferrable reader waiting for a safe snapshot because of it.
        let holder = try await db.begin(.snapshot)
        try await holder.put("acct/0", "held")
        let waiter = try await spawn(db, .readCommitted) { tx in
            try await tx.put("acct/0", "next")
            try await tx.commit()
        }
        await db.waitUntilWaiting(waiter.id, on: "acct/0")
        let writer = try await db.begin(.serializable)
        _ = try await writer.get("acct/1")
        try await writer.put("acct/2", "w")
        let (ids, idsContinuation) = AsyncStream.makeStream(of: TransactionID.self)
        let deferred = Task {
            let tx = try await db.begin(.serializable, readOnly: true, deferrable: true)
            idsContinuation.yield(tx.id)
            idsContinuation.finish()
            _ = try await tx.get("acct/3")
            try await tx.commit()
        }
        var iterator = ids.makeAsyncIterator()
        let deferredID = try #require(await iterator.next())
        await db.waitUntilDeferred(deferredID)
        let report = db.check()
        #expect(report.isConsistent, "\(report)")
        #expect(report.openTransactions == 4 && report.serializableRecords == 2, "\(report)")

        try await writer.commit()
        try await deferred.value
        try await holder.commit()
        try await waiter.value
        expectConsistent(db)
        let s = db.statistics()
        #expect(s.pendingWrites == 0 && s.liveSnapshots == 0)
    }
}
