@testable import IsoKV
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
        try await db.put("k", "new")                       // a new chain for the key
        let new = try #require(db.directory.load("k"))
        #expect(new !== old)
        db.index.withLock { $0.insert("k", old) }          // the stale moment, forced
        // Read-only, and (read-write) at serializable a tracked scan, which reads through `readNotingWriters`.
        for readOnly in [true, false] {
            let rows = try await db.transaction(level, readOnly: readOnly) { tx in try await tx.scan(prefix: "k") }
            #expect(rows.map(\.value) == ["new"], "readOnly: \(readOnly)")
        }
    }
}
