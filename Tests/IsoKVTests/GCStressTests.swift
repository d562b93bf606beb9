@_spi(Testing) import IsoKV
import Testing

@Suite("Garbage collection (Stress)", .timeLimit(.minutes(1)))
struct GCStressTests {
    /// An update-heavy load from several tasks keeps one version per key: memory stays flat.
    @Test(arguments: [IsolationLevel.readCommitted, .snapshot])
    func updateHeavyLoadStaysFlat(_ level: IsolationLevel) async throws {
        let db = makeDatabase()
        let keys = 50
        try await seed(db, (0..<keys).map { (Bytes("k\($0)"), "0") })
        var peak = 0
        for round in 0..<5 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for t in 0..<4 {
                    group.addTask {
                        for i in 0..<250 {
                            try await db.transaction(level, retry: RetryPolicy(maxAttempts: 1000)) { tx in
                                let k = Bytes("k\((t * 31 + i * 7 + round) % keys)")
                                let v = try await tx.get(k)?.int64 ?? 0
                                try await tx.put(k, Bytes(v + 1))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let stats = db.statistics()
            peak = max(peak, stats.versions)
            #expect(stats.chains == keys)
            #expect(stats.liveSnapshots == 0)
            #expect(stats.versions == keys, "round \(round): \(stats.versions) versions for \(keys) keys")
            expectConsistent(db)
        }
        #expect(peak == keys)
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
                    try await db.transaction(.snapshot) { tx in _ = try await tx.scan(prefix: "c") }
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
