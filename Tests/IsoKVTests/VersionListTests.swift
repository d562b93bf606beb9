@_spi(Testing) @testable import IsoKV
import IsoKVCore
import IsoKVTestSupport
import Testing

/// The chains' lock-free version lists (KeyChain.swift): what the scan reads without the chain's mutex, and how
/// the list is built, cut and freed.
@Suite("Version lists")
struct VersionListTests {
    /// A long list held by an old snapshot is freed when the snapshot ends, node by node without recursion (a
    /// recursive release of 20 000 nodes overflows a cooperative thread's stack in a debug build).
    @Test func aLongListIsFreedIteratively() async throws {
        let db = makeDatabase()
        try await db.put("k", "0")
        let old = try await db.begin(.snapshot)
        #expect(try await old.get("k") == "0")
        for i in 1...20_000 { try await db.put("k", Bytes("\(i)")) }
        #expect(db.statistics().versions == 20_001)
        #expect(try await old.scan(prefix: "k").map(\.value) == ["0"])
        try await old.commit()
        #expect(db.statistics().versions == 1)
        #expect(try await db.get("k")?.value == "20000")
        expectConsistent(db)
    }

    /// A value read from the engine shares its version node: it stays intact after the version is collected and
    /// after its key is deleted and collected, in every read path (get, db.get, scan), and the engine's later
    /// versions never write it.
    @Test func aReadValueOutlivesItsVersion() async throws {
        let db = makeDatabase()
        let first = Bytes(Array(repeating: UInt8(ascii: "a"), count: 100))
        try await db.put("k", first)
        let tx = try await db.begin(.snapshot)
        let viaGet = try #require(try await tx.get("k"))
        let viaScan = try #require(try await tx.scan(prefix: "k").first?.value)
        try await tx.commit()
        let viaDB = try #require(try await db.get("k")?.value)
        for i in 0..<50 { try await db.put("k", Bytes(Array(repeating: UInt8(i), count: 100))) }
        try await db.delete("k")
        #expect(db.statistics().versions == 0)
        for v in [viaGet, viaScan, viaDB] {
            #expect(v == first && v.bytes == first.bytes && v.count == 100)
        }
        expectConsistent(db)
    }

    /// A chain keeps its key in 16 bytes: a short key as its two inline words, a long one in a shared object that
    /// the scan index's entry shares too, released with the chain. Lookups, scans and the checker see the same keys.
    @Test func chainKeysShortAndLong() async throws {
        let short = Bytes("fifteen-bytes!!")  // 15: inline
        let long = Bytes("a key of more than fifteen bytes")
        #expect(short.count == 15 && long.count > 15)
        for key in [short, long, Bytes.empty] {
            let chain = KeyChain.make(key: key)
            #expect(chain.key == key && chain.key.count == key.count)
            #expect(chain.storage.hasKey(key) && !chain.storage.hasKey(Bytes("other")))
            #expect(!chain.storage.hasKey(Bytes(key.bytes + [0])), "a longer key with the same prefix")
        }
        weak var longObject: SharedBytes?
        do {
            let chain = KeyChain.make(key: long)
            longObject = chain.key.sharedObject
            #expect(longObject != nil && chain.key.sharedObject === longObject, "one object, shared")
        }
        #expect(longObject == nil, "released with the chain")
        let db = makeDatabase()
        try await db.put(long, "v")
        try await db.put(short, "w")
        #expect(try await db.get(long)?.value == "v")
        #expect(try await db.get(short)?.value == "w")
        let keys = try await db.transaction(.snapshot) { tx in try await tx.scan(.all, limit: nil).map(\.key) }
        #expect(keys == [long, short].sorted())
        expectConsistent(db)
    }

    /// Plain forward scans read leaves by groups of entries (all heads, then all visible nodes, then the rows): any
    /// limit, any start, across groups and leaves, with keys deleted, rewritten and created after the snapshot,
    /// returns exactly what a snapshot model says.
    @Test func groupedScansMatchTheSnapshotModel() async throws {
        let db = makeDatabase()
        var model: [Bytes: Bytes] = [:]
        for i in 0..<700 {
            let key = Bytes(String(format: "g%05d", i))
            model[key] = Bytes("v\(i)")
            try await db.put(key, Bytes("v\(i)"))
        }
        let reader = try await db.begin(.snapshot)
        _ = try await reader.get("g00000")  // takes the snapshot
        var rng = SplitMix64(seed: testSeed("grouped scans"))
        for _ in 0..<300 {  // after the snapshot: invisible to the reader
            let key = Bytes(String(format: "g%05d", Int(rng.next() % 760)))
            if rng.next() % 3 == 0 { try await db.delete(key) } else { try await db.put(key, "new") }
        }
        let sorted = model.keys.sorted()
        for _ in 0..<60 {
            let from = Bytes(String(format: "g%05d", Int(rng.next() % 760)))
            let limit = Int(rng.next() % 150) + 1
            let want = sorted.filter { !($0 < from) }.prefix(limit).map { KeyValue(key: $0, value: model[$0]!) }
            let got = try await reader.scan(KeyRange(from: from), limit: limit)
            #expect(got == Array(want), "from \(from) limit \(limit)")
        }
        try await reader.commit()
        expectConsistent(db)
    }

    /// A write's version node is built with the write for a transaction's first `PendingWrite.versionsBuiltAtWrite`
    /// writes and by the commit for the rest; rewrites, deletes and a rollback to a savepoint on both sides of that
    /// line leave exactly the last pending value of each key installed, all at the commit's number.
    @Test func versionsBuiltAtTheWriteAndAtTheCommitInstallTheLastValues() async throws {
        let db = makeDatabase()
        let n = 3 * PendingWrite.versionsBuiltAtWrite
        func key(_ i: Int) -> Bytes { Bytes("key/\(i)") }
        func long(_ tag: String, _ i: Int) -> Bytes { Bytes("\(tag) value of key \(i), longer than inline") }
        for i in [7, n - 3] { try await db.put(key(i), "old") }
        let tx = try await db.begin(.snapshot)
        for i in 0..<n { try await tx.put(key(i), i.isMultiple(of: 3) ? Bytes("s\(i)") : long("first", i)) }
        try await tx.put(key(2), long("second", 2))  // rewritten: built at the write
        try await tx.put(key(n - 2), long("second", n - 2))  // rewritten past the line: built at the commit
        _ = try await tx.delete(key(7))
        let sp = try await tx.savepoint()
        _ = try await tx.delete(key(n - 3))
        try await tx.put(key(n - 1), long("undone", n - 1))
        try await tx.rollback(to: sp)
        let version = try #require(try await tx.commitReturningVersion())
        for i in 0..<n {
            let expected: Bytes? =
                switch i {
                case 7: nil
                case 2, n - 2: long("second", i)
                default: i.isMultiple(of: 3) ? Bytes("s\(i)") : long("first", i)
                }
            let got = try await db.get(key(i))
            #expect(got?.value == expected, "key \(i)")
            if expected != nil { #expect(got?.version == version, "key \(i)") }
        }
        expectConsistent(db)
    }

    /// A plain scan reads committed data lock-free, except on chains the transaction wrote (own pending writes
    /// are only under the mutex): it sees its own writes and deletes, and never another transaction's.
    @Test(arguments: [IsolationLevel.readCommitted, .snapshot])
    func scansSeeOwnPendingWritesOnly(_ level: IsolationLevel) async throws {
        let db = makeDatabase()
        try await seed(db, [("a", "1"), ("b", "1"), ("c", "1")])
        let writer = try await db.begin(level)
        try await writer.put("b", "writer")
        try await writer.put("d", "new")
        let other = try await db.begin(level)
        try await other.delete("c")
        #expect(try await writer.scan(prefix: "").map(\.value) == ["1", "writer", "1", "new"])
        #expect(try await other.scan(prefix: "").map(\.key) == ["a", "b"])
        let reader = try await db.begin(level, readOnly: true)
        #expect(try await reader.scan(prefix: "").map(\.value) == ["1", "1", "1"])
        try await writer.commit()
        try await other.commit()
        // Read committed takes a new statement snapshot per scan; snapshot keeps the first.
        let expected: [Bytes] = level == .readCommitted ? ["1", "writer", "new"] : ["1", "1", "1"]
        #expect(try await reader.scan(prefix: "").map(\.value) == expected)
        try await reader.commit()
        expectConsistent(db)
    }

    /// A durable commit whose log write failed takes its version back out of the list (the head), and the
    /// versions under it stay readable; pruning cuts the old end; both checked against the copy the checker makes.
    @Test func headRemovalAndPruneKeepTheListOrdered() throws {
        let chain = KeyChain.make(key: "k")
        let db = makeDatabase()
        let reclaimer = db.index.reclaimer
        for ts in UInt64(1)...4 {
            chain.state.withLock { s in
                s.pending = PendingWrite(owner: 9, value: ts == 3 ? nil : Bytes("v\(ts)"))
                s.exclusive = 9
                s.installLocked(owner: 9, commitTS: ts)
                s.exclusive = nil
            }
        }
        #expect(chain.state.withLock { $0.versions.map(\.commitTS) } == [1, 2, 3, 4])
        chain.removeNewestVersion(commitTS: 3, reclaimer: reclaimer)  // not the newest: nothing happens
        #expect(chain.state.withLock { $0.versions.map(\.commitTS) } == [1, 2, 3, 4])
        chain.removeNewestVersion(commitTS: 4, reclaimer: reclaimer)
        #expect(chain.state.withLock { $0.versions.map(\.commitTS) } == [1, 2, 3])
        #expect(db.index.withEpoch { chain.committedValue(at: 2) } == .some("v2"))
        #expect(db.index.withEpoch { chain.committedValue(at: 3) } == .some(nil))  // the tombstone
        #expect(chain.prune(horizon: 2, reclaimer: reclaimer) == .keep)  // v2 stays for snapshots 2
        #expect(chain.state.withLock { $0.versions.map(\.commitTS) } == [2, 3])
        #expect(chain.prune(horizon: 3, reclaimer: reclaimer) == .retire)  // tombstone at the horizon: empty
        #expect(chain.state.withLock { ($0.versions.isEmpty, $0.retired) } == (true, true))
        #expect(db.index.withEpoch { chain.committedValue(at: 5) } == nil)  // retired: look the key up again
    }
}
