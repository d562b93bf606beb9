@_spi(Testing) import IsoKV
import Testing

@Suite("Savepoints")
struct SavepointTests {
    @Test(arguments: IsolationLevel.allCases) func rollbackToUndoesLaterWrites(_ level: IsolationLevel) async throws {
        let db = makeDatabase()
        try await seed(db, [("a", "0"), ("c", "0")])
        let tx = try await db.begin(level)
        try await tx.put("a", "1")
        let sp = try await tx.savepoint()
        try await tx.put("a", "2")
        try await tx.put("b", "new")
        try await tx.delete("c")
        #expect(try await tx.get("a") == "2")
        try await tx.rollback(to: sp)
        #expect(try await tx.get("a") == "1")
        #expect(try await tx.get("b") == nil)
        #expect(try await tx.get("c") == "0")
        // The savepoint survives its rollback and can be used again.
        try await tx.put("b", "again")
        try await tx.rollback(to: sp)
        #expect(try await tx.get("b") == nil)
        try await tx.commit()
        #expect(try await value(db, "a") == "1")
        #expect(try await value(db, "b") == nil)
        #expect(try await value(db, "c") == "0")
    }

    @Test func nestedSavepoints() async throws {
        let db = makeDatabase()
        let tx = try await db.begin(.snapshot)
        try await tx.put("k", "0")
        let s1 = try await tx.savepoint()
        try await tx.put("k", "1")
        let s2 = try await tx.savepoint()
        try await tx.put("k", "2")
        try await tx.rollback(to: s2)
        #expect(try await tx.get("k") == "1")
        try await tx.rollback(to: s1)
        #expect(try await tx.get("k") == "0")
        // s2 was made after s1: gone.
        await expectCode(.invalidSavepoint) { try await tx.rollback(to: s2) }
        try await tx.put("k", "3")
        try await tx.release(s1)
        await expectCode(.invalidSavepoint) { try await tx.rollback(to: s1) }
        try await tx.commit()
        #expect(try await value(db, "k") == "3")
    }

    /// Locks first taken after the savepoint are released by rolling back to it; locks held before stay, and an
    /// upgrade made after it returns to share (as PostgreSQL).
    @Test func rollbackToReleasesLaterLocksOnly() async throws {
        let db = makeDatabase()
        try await seed(db, [("before", "0"), ("after", "0"), ("shared", "0")])
        let tx = try await db.begin(.readCommitted)
        try await tx.put("before", "1")
        try await tx.lock("shared", .forShare)
        let sp = try await tx.savepoint()
        try await tx.put("after", "1")
        try await tx.lock("shared", .forUpdate)
        try await tx.rollback(to: sp)

        let other = try await db.begin(.readCommitted)
        await expectCode(.lockNotAvailable) { try await other.lock("before", .forUpdate, wait: .noWait) }
        #expect(try await other.lock("after", .forUpdate, wait: .noWait) == "0")
        #expect(try await other.lock("shared", .forShare, wait: .noWait) == "0")  // share again…
        await expectCode(.lockNotAvailable) { try await other.lock("shared", .forUpdate, wait: .noWait) }  // …not free
        try await other.commit()
        try await tx.commit()
        #expect(try await value(db, "before") == "1")
        #expect(try await value(db, "after") == "0")
    }

    @Test func savepointOfAnotherTransactionIsRejected() async throws {
        let db = makeDatabase()
        let t1 = try await db.begin(.snapshot)
        let t2 = try await db.begin(.snapshot)
        let sp = try await t1.savepoint()
        await expectCode(.invalidSavepoint) { try await t2.rollback(to: sp) }
        await expectCode(.invalidSavepoint) { try await t2.release(sp) }
        try await t1.commit()
        try await t2.commit()
    }

    @Test func rollbackToWakesAWaiter() async throws {
        let db = makeDatabase()
        try await seed(db, [("x", "0")])
        let tx = try await db.begin(.readCommitted)
        let sp = try await tx.savepoint()
        try await tx.put("x", "1")
        let waiter = try await spawn(db, .readCommitted) { t in
            try await t.put("x", "2")
            try await t.commit()
        }
        await db.waitUntilWaiting(waiter.id, on: "x")
        try await tx.rollback(to: sp)  // releases the lock taken after sp
        try await waiter.value
        try await tx.commit()
        #expect(try await value(db, "x") == "2")
    }
}

@Suite("Optimistic single-key operations")
struct OptimisticTests {
    @Test func versionsAndConditionalWrites() async throws {
        let db = makeDatabase()
        #expect(try await db.get("k") == nil)
        let v1 = try await db.put("k", "a", ifAbsent: true)
        await expectCode(.uniqueViolation) { try await db.put("k", "b", ifAbsent: true) }
        #expect(try await db.get("k") == VersionedValue(value: "a", version: v1))
        let v2 = try await db.put("k", "b", ifVersion: v1)
        #expect(v2 > v1)
        let e = await expectCode(.versionMismatch) { try await db.put("k", "c", ifVersion: v1) }
        #expect(e?.key == "k")
        await expectCode(.versionMismatch) { try await db.delete("k", ifVersion: v1) }
        try await db.delete("k", ifVersion: v2)
        #expect(try await db.get("k") == nil)
        await expectCode(.versionMismatch) { try await db.put("k", "d", ifVersion: v2) }
        // A re-created key never reuses a version.
        let v3 = try await db.put("k", "e")
        #expect(v3 > v2)
        #expect(try await db.delete("k"))
        #expect(try await !db.delete("k"))
    }

    @Test func incrementParsesAndChecks() async throws {
        let db = makeDatabase()
        #expect(try await db.increment("n", by: 5) == 5)
        #expect(try await db.increment("n") == 6)
        #expect(try await db.increment("n", by: -10) == -4)
        try await db.put("text", "hello")
        await expectCode(.invalidInput) { try await db.increment("text") }
        try await db.put("big", Bytes(Int64.max))
        await expectCode(.numericOutOfRange) { try await db.increment("big") }
        #expect(try await value(db, "big") == Bytes(Int64.max))
    }

    @Test func updateTransforms() async throws {
        let db = makeDatabase()
        #expect(try await db.update("u") { _ in nil } == nil)
        #expect(try await db.update("u") { old in Bytes((old?.string ?? "") + "a") } == "a")
        #expect(try await db.update("u") { old in Bytes((old?.string ?? "") + "b") } == "ab")
        #expect(try await db.update("u") { _ in nil } == nil)
        #expect(try await db.get("u") == nil)
    }
}

@Suite("Basics")
struct BasicTests {
    @Test func transactionClosureCommitsAndRollsBack() async throws {
        let db = makeDatabase()
        let r = try await db.transaction { tx in
            try await tx.put("a", "1")
            return 42
        }
        #expect(r == 42)
        struct Oops: Error {}
        await #expect(throws: Oops.self) {
            try await db.transaction { tx in
                try await tx.put("a", "2")
                try await tx.put("b", "2")
                throw Oops()
            }
        }
        #expect(try await value(db, "a") == "1")
        #expect(try await value(db, "b") == nil)
        #expect(db.statistics().pendingWrites == 0)
    }

    @Test func insertAndOwnWrites() async throws {
        let db = makeDatabase()
        let tx = try await db.begin(.snapshot)
        try await tx.insert("k", "1")
        #expect(try await tx.get("k") == "1")
        await expectCode(.uniqueViolation) { try await tx.insert("k", "2") }
        #expect(try await tx.delete("k"))
        try await tx.insert("k", "3")
        try await tx.commit()
        let t2 = try await db.begin(.readCommitted)
        await expectCode(.uniqueViolation) { try await t2.insert("k", "4") }
        try await t2.commit()
        #expect(try await value(db, "k") == "3")
    }

    @Test func endedTransactionsRefuseWork() async throws {
        let db = makeDatabase()
        let tx = try await db.begin(.snapshot)
        try await tx.commit()
        await expectCode(.noActiveTransaction) { try await tx.get("k") }
        await expectCode(.noActiveTransaction) { try await tx.commit() }
        try await tx.rollback()
        try await tx.rollback()
    }

    @Test func droppedTransactionReleasesItsLocks() async throws {
        let db = makeDatabase()
        do {
            let tx = try await db.begin(.readCommitted)
            try await tx.put("x", "1")
        }
        let t2 = try await db.begin(.readCommitted)
        #expect(try await t2.lock("x", .forUpdate, wait: .noWait) == nil)
        try await t2.commit()
    }

    @Test func limits() async throws {
        var limits = Limits(maxKeySize: 8, maxValueSize: 4, maxWritesPerTransaction: 3)
        limits.maxScanLimit = 100
        let db = makeDatabase(limits: limits)
        let tx = try await db.begin(.snapshot)
        await expectCode(.invalidInput) { try await tx.put("", "v") }
        await expectCode(.limitExceeded) { try await tx.put("123456789", "v") }
        await expectCode(.limitExceeded) { try await tx.put("k", "12345") }
        await expectCode(.limitExceeded) { try await db.put("k", "12345") }
        await expectCode(.invalidInput) { try await tx.scan(.all, limit: -1) }
        await expectCode(.invalidInput) { try await tx.scan(.all, limit: 101) }
        try await tx.put("a", "1")
        try await tx.put("b", "1")
        try await tx.put("c", "1")
        try await tx.put("a", "2")  // same key again: still three keys
        await expectCode(.limitExceeded) { try await tx.put("d", "1") }
        try await tx.commit()
        #expect(try await value(db, "a") == "2")
        #expect(try await value(db, "d") == nil)
    }

    @Test func scansOrderLimitReverseAndOwnWrites() async throws {
        let db = makeDatabase()
        try await seed(
            db, (0..<600).map { (Bytes("k/\(String(1000 + $0))"), Bytes.int($0)) } + [("j", "x"), ("l", "y")])
        let tx = try await db.begin(.snapshot)
        try await tx.put("k/0999", "own")
        try await tx.delete("k/1000")
        let all = try await tx.scan(prefix: "k/")
        #expect(all.count == 600)
        #expect(all.first?.key == "k/0999" && all.first?.value == "own")
        #expect(all.map(\.key) == all.map(\.key).sorted())
        let rev = try await tx.scan(prefix: "k/", limit: 3, reverse: true).map(\.key)
        #expect(rev == ["k/1599", "k/1598", "k/1597"])
        let mid = try await tx.scan(KeyRange(from: "k/1100", to: "k/1103")).map(\.key)
        #expect(mid == ["k/1100", "k/1101", "k/1102"])
        #expect(try await tx.scan(.all).count == 602)
        #expect(try await tx.scan(.all, limit: 0).isEmpty)
        try await tx.commit()
    }

    @Test func bytesConveniences() throws {
        struct User: Codable, Equatable { var name: String }
        let b = try Bytes(json: User(name: "Ada"))
        #expect(try b.decode(User.self) == User(name: "Ada"))
        #expect(throws: IsoKVError.self) { try Bytes("nope").decode(User.self) }
        #expect(Bytes("a") < Bytes("ab"))
        #expect(Bytes([0xFF]) > Bytes("z"))
        #expect(KeyRange.prefix(Bytes([0x61, 0xFF])) == KeyRange(from: Bytes([0x61, 0xFF]), to: Bytes([0x62])))
        #expect(KeyRange.prefix(Bytes([0xFF])).upper == nil)
        #expect(Bytes([0, 1]).description == "0x0001")
    }
}

@Suite("Actor callers")
struct ActorCallerTests {
    /// The closure API and manual transactions are usable from an actor (here the main actor): the handle stays
    /// in the caller's isolation domain.
    @MainActor @Test func fromTheMainActor() async throws {
        let db = makeDatabase()
        let n = try await db.transaction(.snapshot) { tx in
            try await tx.put("k", "1")
            return try await tx.get("k")
        }
        #expect(n == "1")
        let tx = try await db.begin(.readCommitted)
        #expect(try await tx.get("k") == "1")
        try await tx.commit()
    }
}
