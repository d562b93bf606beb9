@_spi(Testing) @testable import IsoKV
import Testing

@Suite("Garbage collection (Stress)", .timeLimit(.minutes(1)))
struct GCStressTests {
    /// An update-heavy load from several tasks keeps one version per key: memory stays flat.
    @Test(arguments: [IsolationLevel.readCommitted, .snapshot])
    func updateHeavyLoadStaysFlat(_ level: IsolationLevel) async throws {
        let db = makeDatabase()
        let keys = 50
        try await seed(db, (0..<keys).map { (Bytes("k\($0)"), "0") })
        // The peak is sampled while the writers run (each writer reads the counters every 10 of its updates, while
        // the others keep writing), not only between rounds when nothing runs. Without collection the 5 000 updates
        // would leave 5 050 versions. With it: at read committed, one version per key plus a commit in flight; at
        // snapshot, a transaction waiting for a row lock keeps its snapshot, which holds the versions committed
        // meanwhile (measured up to ~150 extra) — bounded by far less than half a round's 1 000 updates.
        let bound = level == .readCommitted ? keys + 8 : keys + 500
        var peak = 0, samples = 0
        for round in 0..<5 {
            let (roundPeak, roundSamples) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for t in 0..<4 {
                    group.addTask {
                        var peak = 0, samples = 0
                        for i in 0..<250 {
                            try await db.transaction(level, retry: RetryPolicy(maxAttempts: 1000)) { tx in
                                let k = Bytes("k\((t * 31 + i * 7 + round) % keys)")
                                let v = try await tx.get(k)?.int64 ?? 0
                                try await tx.put(k, Bytes(v + 1))
                            }
                            if i % 10 == 5 {
                                peak = max(peak, db.statistics().versions)
                                samples += 1
                            }
                        }
                        return (peak, samples)
                    }
                }
                return try await group.reduce((0, 0)) { (max($0.0, $1.0), $0.1 + $1.1) }
            }
            peak = max(peak, roundPeak)
            samples += roundSamples
            let stats = db.statistics()
            #expect(stats.chains == keys)
            #expect(stats.liveSnapshots == 0)
            #expect(stats.versions == keys, "round \(round): \(stats.versions) versions for \(keys) keys")
            expectConsistent(db)
        }
        #expect(samples == 5 * 4 * 25)
        #expect(peak >= keys && peak <= bound, "peak \(peak) versions for \(keys) keys under load (bound \(bound))")
        print("GC under load (\(level)): peak \(peak) versions for \(keys) keys, \(samples) samples")
    }

    /// A long-running snapshot holds the versions it may read, and they go when it ends.
    @Test func longSnapshotHoldsVersionsUntilItEnds() async throws {
        let db = makeDatabase()
        try await seed(db, [("hot", "0"), ("cold", "c")])
        let reader = try await db.begin(.snapshot)
        #expect(try await reader.get("hot") == "0")
        for i in 1...300 { try await db.put("hot", Bytes.int(i)) }
        try await db.delete("cold")
        #expect(db.statistics().versions >= 300)
        #expect(try await reader.get("hot") == "0")  // still readable: held for the reader
        #expect(try await reader.get("cold") == "c")
        try await reader.commit()
        let after = db.statistics()
        #expect(after.versions == 1)  // "hot"'s newest; "cold"'s tombstone collected
        #expect(after.chains == 1)
        #expect(after.indexedKeys == 1)
        #expect(try await value(db, "hot") == "300")
        expectConsistent(db)
    }

    /// What holds the horizon in `writesUnderALongSnapshotDoNotSweepTheBacklogAtEveryEnd`.
    enum LongSnapshot: CaseIterable {
        /// A read-only transaction (a slot registration): the ends behind it see it live through the oracle's hint
        /// and skip the sweep without computing the horizon.
        case transaction
        /// A backup's registration (a stripe, which the hint does not cover): the ends compute the horizon and skip
        /// the sweep while it has not moved past the last pass's.
        case backup
    }

    /// Writes under a long snapshot file their chains in GC's backlog. While the horizon stays put, transaction ends
    /// do not sweep that backlog again (each sweep walked all of it: the writes' cost grew with the number made under
    /// the snapshot), and one sweep collects it all when the snapshot ends.
    @Test(arguments: LongSnapshot.allCases)
    func writesUnderALongSnapshotDoNotSweepTheBacklogAtEveryEnd(_ holder: LongSnapshot) async throws {
        let db = makeDatabase()
        try await db.put("seen", "0")
        var reader: Transaction?
        var copy: UInt64?
        switch holder {
        case .transaction:
            reader = try await db.begin(.snapshot, readOnly: true)
            #expect(try await reader!.get("seen") == "0")  // its snapshot is registered from here on
        case .backup:
            copy = db.registerSnapshotForCopy()
        }
        let passes = db.gc.sweepPasses.load(ordering: .relaxed)
        for i in 0..<200 {
            for v in ["a", "b"] {
                try await db.transaction(.snapshot) { tx in try await tx.put(Bytes("k\(i)"), Bytes(v)) }
            }
        }
        // The long snapshot is older than both versions of every key, so both stay. A sweep at every end ran 399
        // passes (from the second end on, the first with a backlog).
        #expect(db.statistics().versions == 1 + 2 * 200)
        let during = db.gc.sweepPasses.load(ordering: .relaxed) - passes
        #expect(during == (holder == .transaction ? 0 : 1), "\(during) sweep passes while the horizon stayed put")
        if let reader { try await reader.commit() }
        if let copy { db.releaseSnapshotForCopy(copy) }
        #expect(db.statistics().versions == 1 + 200)
        #expect(db.gc.sweepPasses.load(ordering: .relaxed) - passes == during + 1)
        expectConsistent(db)
    }

    /// Deleted keys, rolled-back inserts and locks on absent keys leave nothing behind.
    @Test func deletedAndAbandonedKeysAreCollected() async throws {
        let db = makeDatabase()
        try await seed(db, (0..<200).map { (Bytes("d\($0)"), "v") })
        try await db.transaction { tx in for i in 0..<200 { try await tx.delete(Bytes("d\(i)")) } }
        let tx = try await db.begin(.readCommitted)
        try await tx.put("never", "1")
        try await tx.lock("absent", .forUpdate)
        try await tx.rollback()
        let s = db.statistics()
        #expect(s.chains == 0)
        #expect(s.versions == 0)
        #expect(s.indexedKeys == 0)
        expectConsistent(db)
    }

    /// Concurrent create/delete churn on few keys while readers scan: no lost keys in the index, no leaks.
    @Test func createDeleteChurnKeepsIndexConsistent() async throws {
        let db = Database.inMemory(Database.Configuration(checkAfterEveryCommit: true))  // strict mode
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<4 {
                group.addTask {
                    for i in 0..<300 {
                        let k = Bytes("c\((t + i) % 8)")
                        if i % 2 == 0 { try await db.put(k, "x") } else { try await db.delete(k) }
                    }
                }
            }
            group.addTask {
                for _ in 0..<100 {
                    // Every scan returns distinct keys of the churned set, in order, each with the one value ever
                    // written: no key twice, none reported from a collected chain.
                    let rows = try await db.transaction(.snapshot) { tx in try await tx.scan(prefix: "c") }
                    let keys = rows.map(\.key)
                    #expect(keys == keys.sorted() && Set(keys).count == keys.count, "\(keys)")
                    #expect(keys.allSatisfy { k in (0..<8).contains { Bytes("c\($0)") == k } }, "\(keys)")
                    #expect(rows.allSatisfy { $0.value == "x" }, "\(rows)")
                }
            }
            try await group.waitForAll()
        }
        try await db.transaction { tx in for i in 0..<8 { try await tx.put(Bytes("c\(i)"), "final") } }
        let rows = try await db.transaction(.snapshot) { tx in try await tx.scan(prefix: "c") }
        #expect(rows.count == 8)
        let s = db.statistics()
        #expect(s.chains == 8 && s.indexedKeys == 8 && s.versions == 8)
        expectConsistent(db)
    }

    /// A token moves around a ring of keys: each transaction deletes the key that holds it and creates the next
    /// one, so every committed state has exactly one key of the ring. Deleted keys' chains are collected and the
    /// keys created again with new chains while scanners read the ring through the index (whose chain references
    /// can be a retired chain for a moment): every scan must see exactly one key, at every snapshot level.
    @Test(arguments: [IsolationLevel.readCommitted, .snapshot, .serializable])
    func scansThroughRecreatedKeysSeeOneToken(_ level: IsolationLevel) async throws {
        // Strict mode: retired chains left in the index for a moment must not be reported while others run.
        let db = Database.inMemory(Database.Configuration(checkAfterEveryCommit: true))
        let ring = 6
        try await db.put("ring/0", "token")
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                var moved = 0
                while moved < 600 {
                    do {
                        try await db.transaction(.snapshot) { tx in
                            let rows = try await tx.scan(prefix: "ring/")
                            guard rows.count == 1,
                                let i = Int(String(decoding: rows[0].key.bytes.dropFirst(5), as: UTF8.self))
                            else { throw IsoKVError(.invalidInput, "ring has \(rows.count) keys") }
                            try await tx.delete(rows[0].key)
                            try await tx.insert(Bytes("ring/\((i + 1) % ring)"), "token")
                        }
                        moved += 1
                    } catch let e as IsoKVError where e.isRetryable { continue }
                }
                return 0
            }
            for _ in 0..<2 {
                group.addTask {
                    var bad = 0
                    for _ in 0..<800 {
                        let n = try await db.transaction(level, readOnly: true) { tx in
                            try await tx.scan(prefix: "ring/").count
                        }
                        if n != 1 { bad += 1 }
                    }
                    return bad
                }
            }
            var bad = 0
            for try await b in group { bad += b }
            #expect(bad == 0)
        }
        let s = db.statistics()
        #expect(s.indexedKeys <= ring)
        expectConsistent(db)
    }
}
