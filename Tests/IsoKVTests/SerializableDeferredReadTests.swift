@_spi(Testing) import IsoKV
import IsoKVTestSupport
import Testing

/// The first point read of a tracked serializable transaction is made without an SIREAD lock and tracked late, by
/// the next operation or the commit (SSI/DESIGN.md, "The first point read, deferred"). Replayed step by step in one
/// task; the transactions are read-write, so that none is a safe read-only one (never tracked at all).
@Suite("Serializable deferred first read")
struct SerializableDeferredReadTests {
    func pointLocks(_ db: Database) -> Int { db.statistics().serializable.pointLocks }

    /// A transaction that reads one key and commits takes no point lock, and leaves SSI with nothing retained
    /// for that read.
    @Test func aSingleReadTakesNoPointLock() async throws {
        let db = makeDatabase()
        try await seed(db, [("a", "1")])
        let other = try await db.begin()  // a concurrent tracked transaction, so that commits are retained
        _ = try await other.get("z")
        let t = try await db.begin()
        #expect(try await t.get("a") == "1")
        #expect(db.statistics().serializable.active == 2)
        #expect(pointLocks(db) == 0)
        try await t.commit()
        #expect(pointLocks(db) == 0)
        try await other.commit()
    }

    /// The second operation tracks the first read: both keys are locked from then on.
    @Test func theSecondReadTracksTheFirst() async throws {
        let db = makeDatabase()
        try await seed(db, [("a", "1"), ("b", "2")])
        let t = try await db.begin()
        _ = try await t.get("a")
        #expect(pointLocks(db) == 0)
        _ = try await t.get("b")
        #expect(pointLocks(db) == 2)
        try await t.rollback()
        #expect(pointLocks(db) == 0)
    }

    /// Write skew where each transaction's first operation is a read (the deferred one): the read is tracked at
    /// the transaction's write of the other key, so the cycle is still found and one of the two fails with 40001.
    @Test func writeSkewThroughDeferredReadsIsStillCaught() async throws {
        let db = makeDatabase()
        try await seed(db, [("x", "on"), ("y", "on")])
        let t1 = try await db.begin(), t2 = try await db.begin()
        #expect(try await t1.get("x") == "on")
        #expect(try await t2.get("y") == "on")
        var failures = 0
        do { try await t1.put("y", "off") } catch let e as IsoKVError where e.code == .serializationFailure {
            failures += 1
        }
        do { try await t2.put("x", "off") } catch let e as IsoKVError where e.code == .serializationFailure {
            failures += 1
        }
        for t in [t1, t2] {
            do { try await t.commit() } catch let e as IsoKVError where e.code == .serializationFailure {
                failures += 1
            } catch let e as IsoKVError where e.code == .transactionAborted {}
        }
        #expect(failures == 1)
        let x = try await value(db, "x"), y = try await value(db, "y")
        #expect(x == "on" || y == "on", "both went off: write skew")
    }

    /// A deferred read whose key a concurrent transaction changed before the read is tracked: the reader gets the
    /// rw-antidependency when tracked late, exactly as an early read would have. Here it closes a dangerous
    /// structure with the reader as pivot (t_in -rw-> reader -rw-> writer, the writer committed first).
    @Test func aLateTrackedReadFindsTheWriterThatCommittedMeanwhile() async throws {
        let db = makeDatabase()
        try await seed(db, [("k", "0"), ("j", "0")])
        let reader = try await db.begin()
        _ = try await reader.get("k")  // deferred
        let writer = try await db.begin()
        try await writer.put("k", "1")
        try await writer.commit()  // reader -rw-> writer, not known yet
        let tIn = try await db.begin()
        _ = try await tIn.get("j")  // deferred too; tracked at its write below
        try await tIn.put("q", "x")
        // The reader writes j, which tIn read: tIn -rw-> reader; its deferred read of k is tracked first and finds
        // the committed writer: reader is now a pivot whose out-end committed first.
        let e = await expectCode(.serializationFailure) {
            try await reader.put("j", "1")
            try await reader.commit()
        }
        #expect(e != nil)
        try await tIn.commit()
    }

    /// Read-modify-write: the transaction's own pending write covers its deferred read (no point lock); a rollback
    /// to a savepoint that undoes the write ends the cover, and the next operation takes the lock.
    @Test func ownWriteCoversTheReadUntilRolledBack() async throws {
        let db = makeDatabase()
        try await seed(db, [("k", "0"), ("j", "0")])
        let t = try await db.begin()
        _ = try await t.get("k")
        try await t.put("k", "1")
        _ = try await t.get("j")
        #expect(pointLocks(db) == 1)  // j only
        try await t.commit()
        #expect(try await value(db, "k") == "1")

        let u = try await db.begin()
        _ = try await u.get("k")
        let sp = try await u.savepoint()
        try await u.put("k", "2")
        try await u.rollback(to: sp)
        _ = try await u.get("j")
        #expect(pointLocks(db) == 2)  // k, tracked again once the write was undone, and j
        try await u.rollback()
    }

    /// A read-only transaction with a concurrent writer (so not safe at begin) is not registered with SSI for its
    /// first read: no record, no lock. It ends that way; only a second operation registers it.
    @Test(arguments: [false, true]) func readOnlySingleReadIsNeverRegistered(durable: Bool) async throws {
        let dir = TemporaryDirectory("late-registration")
        defer { dir.remove() }
        let db = durable ? try await Database.open(path: dir.path, options: durableOptions(.fsync)) : makeDatabase()
        try await seed(db, [("a", "1"), ("b", "2")])
        let writer = try await db.begin()
        try await writer.put("w", "1")  // a read-write transaction active: read-only begins are not safe
        let ro = try await db.begin(.serializable, readOnly: true)
        #expect(try await ro.get("a") == "1")
        var s = db.statistics().serializable
        #expect(s.active == 1 && s.safeReadOnlyAtBegin == 0, "\(s)")  // the writer only
        #expect(pointLocks(db) == 0)
        try await ro.commit()
        s = db.statistics().serializable
        #expect(s.readOnlyNeverRegistered == 1 && s.readOnlyRegisteredLate == 0, "\(s)")

        let two = try await db.begin(.serializable, readOnly: true)
        #expect(try await two.get("a") == "1")
        #expect(try await two.get("b") == "2")  // registered now, both reads tracked
        s = db.statistics().serializable
        #expect(s.active == 2 && s.readOnlyRegisteredLate == 1 && s.pointLocks == 2, "\(s)")
        expectConsistent(db, .concurrent)
        try await two.commit()
        try await writer.commit()
        s = db.statistics().serializable
        #expect(s.active == 0 && s.retainedCommitted == 0 && s.pointLocks == 0, "\(s)")
        expectConsistent(db)
        if durable { await db.close() }
    }

    /// Fekete's read-only anomaly with the read-only transaction registered late, after the pivot committed: its
    /// registration goes below the pivot's commit, and the pivot's record — which the cleanup at its commit would
    /// have removed, no registered transaction overlapping it — is still there, so the late-tracked first read
    /// closes the structure and the read-only transaction fails (as it does when registered at its begin).
    /// On a durable database too (`durable`): there commits are marked after their fsync, in timestamp order.
    @Test(arguments: [false, true], [false, true])
    func lateRegistrationStillSeesThePivotThatCommitted(summarized: Bool, durable: Bool) async throws {
        // With `summarized`, commits after the pivot push it out of the retained records into the summary.
        let configuration = Database.Configuration(
            serializable: SerializableLimits(maxRetainedCommitted: summarized ? 2 : 10_000))
        let dir = TemporaryDirectory("late-registration-pivot")
        defer { dir.remove() }
        var options = durableOptions(.fsync)
        options.configuration = configuration
        let db = durable ? try await Database.open(path: dir.path, options: options) : Database.inMemory(configuration)
        try await seed(db, [("x", "0"), ("y", "0")])
        let pivot = try await db.begin()
        _ = try await pivot.get("x")
        _ = try await pivot.get("y")
        let deposit = try await db.begin()
        try await deposit.put("y", "20")
        try await deposit.commit()  // pivot -rw(y)-> deposit, which committed first
        let report = try await db.begin(.serializable, readOnly: true)  // sees the deposit, not the pivot's write
        #expect(try await report.get("x") == "0")  // one read: not registered
        try await pivot.put("x", "-11")
        try await pivot.commit()  // no conflict in yet: commits
        if summarized {
            for i in 0..<4 { try await db.transaction(.serializable) { try await $0.put(Bytes("filler/\(i)"), "1") } }
            #expect(db.statistics().serializable.summarizedWriters >= 1)
        }
        // The second read registers it, tracks the first: report -rw(x)-> pivot -rw(y)-> deposit.
        await expectCode(.serializationFailure) { _ = try await report.get("y") }
        let s = db.statistics().serializable
        #expect(s.readOnlyRegisteredLate == 1, "\(s)")
        expectConsistent(db)
        if durable { await db.close() }
    }
}
