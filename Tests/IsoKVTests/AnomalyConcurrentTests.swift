@_spi(Testing) import IsoKV
import Testing

/// The seeds' anomalies replayed with real concurrent transactions, per level, asserting the exact outcome.
/// Written generically over the store protocol so that every backend runs the same replays.
enum AnomalyReplays {
    /// Dirty write: T2 writes a row T1 wrote and has not committed. T2 waits at every level; when T1 commits,
    /// T2 proceeds at read committed / read uncommitted and fails with 40001 at snapshot.
    static func dirtyWrite<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("x", "0")])
        let t1 = try await store.begin(level)
        try await t1.put("x", "1")
        let t2 = try await spawn(store, level) { tx in
            try await tx.put("x", "2")
            try await tx.commit()
        }
        await store.waitUntilWaiting(t2.id, on: "x")
        #expect(try await value(store, "x") == "0")   // neither write is visible
        try await t1.commit()
        switch level {
        case .snapshot, .serializable:
            let r = await t2.result
            #expect((try? r.get()) == nil)
            #expect(IsoKVError.Code.serializationFailure ~= r.failure!)
            #expect((r.failure as? IsoKVError)?.otherTransaction == t1.id)
            #expect(try await value(store, "x") == "1")
        case .readCommitted, .readUncommitted:
            try await t2.value
            #expect(try await value(store, "x") == "2")
        }
    }

    /// Dirty write, holder rolls back: the waiter proceeds at every level.
    static func dirtyWriteRolledBack<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("x", "0")])
        let t1 = try await store.begin(level)
        try await t1.put("x", "1")
        let t2 = try await spawn(store, level) { tx in
            try await tx.put("x", "2")
            try await tx.commit()
        }
        await store.waitUntilWaiting(t2.id, on: "x")
        try await t1.rollback()
        try await t2.value
        #expect(try await value(store, "x") == "2")
    }

    /// Dirty read: T2 reads a row T1 wrote and has not committed. Only read uncommitted sees it; nobody waits.
    static func dirtyRead<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("x", "0")])
        let t1 = try await store.begin(.readCommitted)
        try await t1.put("x", "1")
        let seen = try await spawn(store, level) { tx in
            let v = try await tx.get("x")
            try await tx.commit()
            return v
        }.value
        #expect(seen == (level == .readUncommitted ? "1" : "0"))
        try await t1.commit()
    }

    /// Aborted read: T2 reads T1's uncommitted write, T1 rolls back, T2 reads again.
    static func abortedRead<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("x", "0")])
        let t1 = try await store.begin(.readCommitted)
        let t2 = try await store.begin(level)
        try await t1.put("x", "1")
        let first = try await t2.get("x")
        try await t1.rollback()
        let second = try await t2.get("x")
        try await t2.commit()
        #expect(first == (level == .readUncommitted ? "1" : "0"))
        #expect(second == "0")
    }

    /// Lost update with read-modify-write: both read 0 and write read+1. Read committed loses T1's update;
    /// snapshot fails T2 with 40001.
    static func lostUpdate<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("n", "0")])
        let t1 = try await store.begin(level)
        let t2 = try await store.begin(level)
        let r1 = try await t1.get("n")!.int64!
        let r2 = try await t2.get("n")!.int64!
        try await t1.put("n", Bytes(r1 + 1))
        try await t1.commit()
        if level.hasTransactionSnapshot {
            let e = await expectCode(.serializationFailure) { try await t2.put("n", Bytes(r2 + 1)) }
            #expect(e?.key == "n")
            #expect(e?.otherTransaction == t1.id)
            await expectCode(.transactionAborted) { try await t2.get("n") }
            await expectCode(.transactionAborted) { try await t2.commit() }
            try await t2.rollback()
            #expect(try await value(store, "n") == "1")
        } else {
            try await t2.put("n", Bytes(r2 + 1))
            try await t2.commit()
            #expect(try await value(store, "n") == "1")   // two increments, one survives: the lost update
        }
    }

    /// Lost update where T2's write waits for T1's lock: RC proceeds against the newest version (and overwrites),
    /// snapshot fails with 40001 once T1 commits.
    static func lostUpdateAfterWait<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("n", "0")])
        let t1 = try await store.begin(level)
        let r1 = try await t1.get("n")!.int64!
        try await t1.put("n", Bytes(r1 + 1))
        let t2 = try await spawn(store, level) { tx in
            let r2 = try await tx.get("n")!.int64!
            try await tx.put("n", Bytes(r2 + 1))
            try await tx.commit()
            return r2
        }
        await store.waitUntilWaiting(t2.id, on: "n")
        try await t1.commit()
        let r = await t2.result
        if level.hasTransactionSnapshot {
            #expect(IsoKVError.Code.serializationFailure ~= r.failure!)
            #expect(try await value(store, "n") == "1")
        } else if level == .readCommitted {
            #expect(try r.get() == 0)                     // read before T1 committed…
            #expect(try await value(store, "n") == "1")   // …so T1's increment is lost
        } else {
            #expect(try r.get() == 1)                     // read uncommitted: T1's dirty 1…
            #expect(try await value(store, "n") == "2")   // …which T1 then committed: no loss, by luck
        }
    }

    /// Non-repeatable read: T1 reads, T2 updates and commits, T1 reads again.
    static func nonRepeatableRead<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("x", "0")])
        let t1 = try await store.begin(level)
        #expect(try await t1.get("x") == "0")
        try await spawn(store, level) { tx in
            try await tx.put("x", "1")
            try await tx.commit()
        }.value
        #expect(try await t1.get("x") == (level.hasTransactionSnapshot ? "0" : "1"))
        try await t1.commit()
    }

    /// Phantom: T1 scans a prefix, T2 inserts into it and commits, T1 scans again.
    static func phantom<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("emp/1", "a"), ("emp/2", "b"), ("other", "z")])
        let t1 = try await store.begin(level)
        #expect(try await t1.scan(prefix: "emp/").map(\.key) == ["emp/1", "emp/2"])
        try await spawn(store, level) { tx in
            try await tx.insert("emp/3", "c")
            try await tx.commit()
        }.value
        let again = try await t1.scan(prefix: "emp/").map(\.key)
        #expect(again == (level.hasTransactionSnapshot ? ["emp/1", "emp/2"] : ["emp/1", "emp/2", "emp/3"]))
        try await t1.commit()
    }

    /// Read skew: T1 reads x, T2 moves 10 from x to y and commits, T1 reads y: the total T1 sees is wrong below
    /// snapshot.
    static func readSkew<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, [("x", "50"), ("y", "50")])
        let t1 = try await store.begin(level)
        let x = try await t1.get("x")!.int64!
        try await spawn(store, level) { tx in
            try await tx.put("x", "40")
            try await tx.put("y", "60")
            try await tx.commit()
        }.value
        let y = try await t1.get("y")!.int64!
        try await t1.commit()
        #expect(x + y == (level.hasTransactionSnapshot ? 100 : 110))
    }

    /// Read skew inside one scan at read committed: a scan sees one statement snapshot, never half a commit.
    static func scanSeesOneSnapshot<S: TestableStore>(_ store: S, _ level: IsolationLevel) async throws {
        try await seed(store, (0..<200).map { (Bytes("acct/\(1000 + $0)"), "10") })
        let writer = Task {
            for i in 0..<50 {
                try await store.transaction(.readCommitted) { tx in
                    let a = Bytes("acct/\(1000 + (i * 7) % 200)"), b = Bytes("acct/\(1000 + (i * 13 + 5) % 200)")
                    guard a != b else { return }
                    try await tx.put(a, Bytes(try await tx.get(a)!.int64! - 1))
                    try await tx.put(b, Bytes(try await tx.get(b)!.int64! + 1))
                }
            }
        }
        let t = try await store.begin(level)
        for _ in 0..<20 {
            let total = try await t.scan(prefix: "acct/").reduce(Int64(0)) { $0 + $1.value.int64! }
            #expect(total == 2000)
        }
        try await t.commit()
        try await writer.value
    }
}

extension Result {
    var failure: Failure? { if case .failure(let e) = self { return e } else { return nil } }
}

@Suite("Anomalies (Concurrent)", .timeLimit(.minutes(1)))
struct AnomalyConcurrentTests {
    static let committedLevels: [IsolationLevel] = [.readCommitted, .snapshot]

    @Test(arguments: IsolationLevel.allCases) func dirtyWrite(_ level: IsolationLevel) async throws {
        try await AnomalyReplays.dirtyWrite(makeDatabase(), level)
    }
    @Test(arguments: IsolationLevel.allCases) func dirtyWriteRolledBack(_ level: IsolationLevel) async throws {
        try await AnomalyReplays.dirtyWriteRolledBack(makeDatabase(), level)
    }
    @Test(arguments: IsolationLevel.allCases) func dirtyRead(_ level: IsolationLevel) async throws {
        try await AnomalyReplays.dirtyRead(makeDatabase(), level)
    }
    @Test(arguments: IsolationLevel.allCases) func abortedRead(_ level: IsolationLevel) async throws {
        try await AnomalyReplays.abortedRead(makeDatabase(), level)
    }
    @Test(arguments: IsolationLevel.allCases) func lostUpdate(_ level: IsolationLevel) async throws {
        try await AnomalyReplays.lostUpdate(makeDatabase(), level)
    }
    @Test(arguments: IsolationLevel.allCases) func lostUpdateAfterWait(_ level: IsolationLevel) async throws {
        try await AnomalyReplays.lostUpdateAfterWait(makeDatabase(), level)
    }
    @Test(arguments: IsolationLevel.allCases) func nonRepeatableRead(_ level: IsolationLevel) async throws {
        try await AnomalyReplays.nonRepeatableRead(makeDatabase(), level)
    }
    @Test(arguments: IsolationLevel.allCases) func phantom(_ level: IsolationLevel) async throws {
        try await AnomalyReplays.phantom(makeDatabase(), level)
    }
    @Test(arguments: IsolationLevel.allCases) func readSkew(_ level: IsolationLevel) async throws {
        try await AnomalyReplays.readSkew(makeDatabase(), level)
    }
    @Test(arguments: committedLevels) func scanSeesOneSnapshot(_ level: IsolationLevel) async throws {
        try await AnomalyReplays.scanSeesOneSnapshot(makeDatabase(), level)
    }
}
