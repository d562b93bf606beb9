@testable import IsoKV
import IsoKVSync
import Testing

/// The scan index hands scans each key's chain; a chain retired meanwhile must not be read (white-box: the race
/// that leaves a retired chain in the index for a moment is forced by putting it back by hand).
@Suite("Scan index chain hints")
struct ScanIndexTests {
    @Test(arguments: [IsolationLevel.readUncommitted, .readCommitted, .snapshot, .serializable])
    func aRetiredChainInTheIndexIsNotRead(_ level: IsolationLevel) async throws {
        let db = Database.inMemory()
        try await db.put("k", "old")
        let old = try #require(db.directory.load("k"))
        // What GC does to a collected chain, minus emptying it: retire it, drop it from the directory and index.
        old.state.withLock { $0.retired = true }
        db.remove(retired: old)
        try await db.put("k", "new")  // a new chain for the key
        let new = try #require(db.directory.load("k"))
        #expect(new !== old)
        db.index.withWriterLock { $0.insert("k", old) }  // the stale moment, forced
        // Read-only, and (read-write) at serializable a tracked scan, which reads through `readNotingWriters`.
        for readOnly in [true, false] {
            let rows = try await db.transaction(level, readOnly: readOnly) { tx in try await tx.scan(prefix: "k") }
            #expect(rows.map(\.value) == ["new"], "readOnly: \(readOnly)")
        }
    }
}

/// A directory that reports, each time a chain is stored, whether the scan index's lock was held at that moment.
final class ProbingDirectory: KeyDirectory, @unchecked Sendable {
    let inner = ReadMostlyDirectory()
    /// Set once before use (the database is made after its directory); read on the storing thread.
    nonisolated(unsafe) weak var database: Database?
    let storedWithIndexLocked = Locked<[Bool]>([])

    func load(_ key: Bytes) -> KeyChain? { inner.load(key) }
    func loadOrStore(_ key: Bytes, _ chain: KeyChain) -> (actual: KeyChain, loaded: Bool) {
        let result = inner.loadOrStore(key, chain)
        if !result.loaded, let database {
            let locked = database.scanIndexIsLockedForTesting
            storedWithIndexLocked.withLock { $0.append(locked) }
        }
        return result
    }
    func remove(_ chain: KeyChain) { inner.remove(chain) }
    func forEach(_ body: (Bytes, KeyChain) -> Bool) { inner.forEach(body) }
}

@Suite struct ChainCreationTests {
    /// A new key's chain becomes visible in the directory only while the scan index's lock is held, and is indexed
    /// in the same critical section: a writer that finds the chain (lock-free) and commits can never leave a
    /// committed key that a scan of a later snapshot misses.
    @Test func aNewChainIsStoredAndIndexedInOneCriticalSection() async throws {
        let directory = ProbingDirectory()
        let db = Database(directory: directory)
        directory.database = db
        for i in 0..<20 { try await db.put(Bytes("k\(i)"), "v") }
        try await db.transaction(.snapshot) { tx in try await tx.put("k-tx", "v") }
        let probes = directory.storedWithIndexLocked.withLock { $0 }
        #expect(probes.count == 21)
        #expect(probes.allSatisfy { $0 }, "a chain was stored while the scan index was unlocked: \(probes)")
        let scanned = try await db.transaction(.snapshot) { tx in try await tx.scan().count }
        #expect(scanned == 21)
    }
}
