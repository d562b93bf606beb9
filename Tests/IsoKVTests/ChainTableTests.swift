import ConcurrentMaps
@_spi(Testing) @testable import IsoKV
import IsoKVSync
import IsoKVTestSupport
import Testing

/// The engine's key directory (ChainTable.swift): lookups against a model through growth and tombstone purges,
/// removal that defers the chain's release to the reclaimer, and the point-read fast path's contract.
@Suite("Chain table")
struct ChainTableTests {
    /// Random inserts, removals and lookups from a tiny table (so that it grows and purges tombstones many times)
    /// agree with a dictionary at every step; the occupancy stays within its bounds.
    @Test func agreesWithAModelThroughGrowthAndPurges() {
        var rng = SplitMix64(seed: testSeed("ChainTableTests.agreesWithAModel"))
        let reclaimer = ScanIndex().reclaimer
        let table = ChainTable(reclaimer: reclaimer, capacity: 8)
        var model: [Bytes: KeyChain] = [:]
        var grewTo = 8
        for step in 0..<20_000 {
            // Short keys (inline) and long ones (on the heap), from a small space so that keys come back.
            let n = Int(rng.next() % 600)
            let key = n % 3 == 0 ? Bytes("a-long-key-on-the-heap-\(n)") : Bytes("k\(n)")
            switch rng.next() % 3 {
            case 0:
                let chain = KeyChain.make(key: key)
                let (actual, loaded) = table.loadOrStore(key, chain)
                if let existing = model[key] {
                    #expect(loaded && actual === existing, "step \(step): \(key) stored twice")
                } else {
                    #expect(!loaded && actual === chain)
                    model[key] = chain
                }
            case 1:
                if let chain = model.removeValue(forKey: key) { table.remove(chain) }
                // Removing a chain that is not (or no longer) stored changes nothing.
                table.remove(KeyChain.make(key: key))
            default:
                #expect(table.load(key) === model[key], "step \(step): lookup of \(key)")
            }
            let (live, tombstones, capacity) = table.occupancy
            #expect(live == model.count)
            #expect(capacity & (capacity - 1) == 0 && (live + tombstones) * 4 <= capacity * 3)
            grewTo = max(grewTo, capacity)
            _ = reclaimer.collect()
        }
        var listed: [Bytes: KeyChain] = [:]
        table.forEach { key, chain in
            listed[key] = chain
            return true
        }
        #expect(listed.count == model.count && listed.allSatisfy { model[$0.key] === $0.value })
        #expect(grewTo >= 256, "the table never grew")
    }

    /// A slot is one word: the hash's top 20 bits above the chain's address ÷ 16. Encoding and decoding agree for
    /// any 16-byte-aligned address below 2^48 and any hash; the tag ignores the hash's low bits (the probe start),
    /// and a live word is never the empty or tombstone word.
    @Test func slotWordsKeepTheTagAndTheAddress() {
        var rng = SplitMix64(seed: testSeed("ChainTable slot words"))
        for _ in 0..<10_000 {
            let address = UInt(rng.next() % (1 << 44) + 2) << 4
            let hash = UInt(rng.next())
            let w = ChainTable.slotWord(hash: hash, chain: address)
            #expect(ChainTable.address(w) == address)
            #expect(w & ~(UInt.max >> ChainTable.tagBits) == ChainTable.tag(hash))
            #expect(ChainTable.tag(hash) == ChainTable.tag(hash ^ UInt(rng.next() % (1 << 44))), "low bits ignored")
            #expect(w > ChainTable.tombstone)
        }
        // A real chain's address fits.
        let chain = KeyChain.make(key: "k")
        let bits = UInt(bitPattern: Unmanaged.passUnretained(chain.storage).toOpaque())
        #expect(ChainTable.address(ChainTable.slotWord(hash: 0, chain: bits)) == bits)
    }

    /// A chain removed while a reader holds it borrowed stays alive until the reader leaves its epoch (the table
    /// retires its reference instead of releasing it), and is freed afterwards.
    @Test func aRemovedChainLivesUntilTheBorrowerLeaves() {
        let index = ScanIndex()
        let table = ChainTable(reclaimer: index.reclaimer)
        weak var weakStorage: ChainStorage?
        do {
            let chain = KeyChain.make(key: "k")
            weakStorage = chain.storage
            _ = table.loadOrStore("k", chain)
        }
        index.withEpoch {
            guard let borrowed = table.borrow("k") else {
                Issue.record("the stored chain was not found")
                return
            }
            table.remove(KeyChain(storage: borrowed.takeUnretainedValue()))
            _ = index.reclaimer.collect()
            #expect(weakStorage != nil, "released while borrowed")
            #expect(borrowed._withUnsafeGuaranteedRef { $0.hasKey("k") })
            #expect(table.borrow("k") == nil)
        }
        _ = index.reclaimer.collect()
        #expect(weakStorage == nil, "never released")
    }

    /// The point-read fast path's answers: a value, "absent" at a registered snapshot, and "take the locked path"
    /// for an unregistered one that finds nothing (versions may have been cut) and for another directory.
    @Test func readCommittedAnswersOrDefers() async throws {
        let db = Database.inMemory()
        try await db.put("a", "1")
        let old = try await db.begin(.snapshot, readOnly: true)
        #expect(try await old.get("a") == "1")  // registers its snapshot: GC keeps version 1
        try await db.put("a", "2")
        let published = db.oracle.latest()
        #expect(db.readCommitted("a", snapshot: nil)?.value == "2")
        #expect(db.readCommitted("a", snapshot: old.snapshot!)?.value == "1")
        try await old.commit()
        #expect(db.readCommitted("missing", snapshot: nil).map { $0.value == nil } == true)
        // Only versions newer than the snapshot: "absent" when registered, deferred when not.
        let chain = db.chainForWriting("b")
        chain.replaceVersionsForTesting(
            [CommittedVersion(value: "future", commitTS: published + 10, creator: 1)], reclaimer: db.index.reclaimer)
        #expect(db.readCommitted("b", snapshot: published).map { $0.value == nil } == true)
        #expect(db.readCommitted("b", snapshot: nil) == nil)
        let other = Database(directory: ReadMostlyDirectory())
        try await other.put("a", "1")
        #expect(other.readCommitted("a", snapshot: nil) == nil)
        #expect(try await other.get("a")?.value == "1")
    }
}

/// Readers borrowing chains while a writer inserts and removes keys (growing and purging the table): a key that is
/// never removed is always found with its own chain, and a churning key, when found, is the chain stored for it.
@Suite("Chain table readers vs writers (Concurrent)")
struct ChainTableConcurrentTests {
    @Test func readersAlwaysFindStableKeys() async throws {
        let index = ScanIndex()
        let table = ChainTable(reclaimer: index.reclaimer, capacity: 8)
        let stable = (0..<200).map { Bytes("stable-\($0)") }
        let stableChains = stable.map { KeyChain.make(key: $0) }
        for (k, c) in zip(stable, stableChains) { _ = table.loadOrStore(k, c) }
        let churn = (0..<400).map { Bytes("churn-\($0)") }
        let stop = Locked(false)
        let failures = Locked<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for round in 0..<30 {
                    var stored: [KeyChain] = []
                    for k in churn { stored.append(table.loadOrStore(k, KeyChain.make(key: k)).actual) }
                    for c in stored { table.remove(c) }
                    if round % 5 == 0 { _ = index.reclaimer.collect() }
                    await Task.yield()
                }
                stop.withLock { $0 = true }
            }
            for r in 0..<2 {
                group.addTask {
                    var rng = SplitMix64(seed: UInt64(r + 1))
                    var reads = 0
                    while !stop.withLock({ $0 }) || reads < 1000 {
                        let i = Int(rng.next() % UInt64(stable.count))
                        let ok = index.withEpoch {
                            table.borrow(stable[i]).map {
                                $0.toOpaque() == Unmanaged.passUnretained(stableChains[i].storage).toOpaque()
                            } ?? false
                        }
                        if !ok { failures.withLock { $0.append("stable key \(stable[i]) not found") } }
                        let j = Int(rng.next() % UInt64(churn.count))
                        let churnOK = index.withEpoch {
                            table.borrow(churn[j]).map { $0._withUnsafeGuaranteedRef { $0.hasKey(churn[j]) } } ?? true
                        }
                        if !churnOK { failures.withLock { $0.append("churn key \(churn[j]) found another chain") } }
                        reads += 1
                        if reads % 128 == 0 { await Task.yield() }
                    }
                }
            }
            try await group.waitForAll()
        }
        let found = failures.withLock { $0 }
        #expect(found.isEmpty, "\(found.prefix(5))")
        #expect(table.occupancy.live == stable.count)
    }
}

/// `ChainState` keeps value semantics although its row-lock part is a box allocated while a row is busy: a copy
/// taken under the lock (as the consistency checker takes one) is not changed by later lock operations, and an
/// idle row drops its box.
@Suite("Chain state copies")
struct ChainStateCopyTests {
    @Test func aCopyIsASnapshotOfTheRowLock() {
        let chain = KeyChain.make(key: "k")
        chain.state.withLock { s in
            s.exclusive = 7
            s.pending = PendingWrite(owner: 7, value: "v")
        }
        let copy = chain.state.withLock { $0 }
        let detached = chain.state.withLock { $0.detachedCopy() }
        chain.state.withLock { s in
            s.pending = nil
            s.exclusive = nil
            s.shared.append(9)
        }
        #expect(copy.exclusive == 7 && copy.pending?.owner == 7 && copy.shared.isEmpty)
        #expect(detached.exclusive == 7 && detached.pending?.owner == 7 && detached.shared.isEmpty)
        chain.state.withLock { s in
            #expect(s.exclusive == nil && s.pending == nil && s.shared == [9])
            s.shared.removeAll()
            #expect(s.isRowLockAllocatedForTesting == false, "an idle row kept its box")
        }
    }
}
