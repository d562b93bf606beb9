import Foundation
@_spi(Testing) @testable import IsoKV
import IsoKVCore
import Synchronization
import Testing

/// A `.serializable` read-only transaction found safe (untracked by SSI) reads as a `.snapshot` one does: lock-free
/// committed reads at its snapshot, points and scans, never waiting for a chain's mutex — and still exactly its
/// snapshot.
@Suite("Safe read-only serializable transactions")
struct SafeReadOnlyConcurrentTests {
    final class Flags: Sendable {
        let locked = Atomic<Bool>(false)
        let release = Atomic<Bool>(false)
        /// Set by the holder if it let go on its own after two seconds (a reader waited for it).
        let gaveUp = Atomic<Bool>(false)
    }

    @Test func aSafeReadOnlyTransactionReadsWhileTheKeysMutexIsHeld() async throws {
        let db = makeDatabase()
        try await db.put("k", "1")
        try await db.put("l", "2")
        let before = db.statistics().serializable.safeReadOnlyAtBegin
        let tx = try await db.begin(.serializable, readOnly: true)
        #expect(try await tx.get("l") == "2")  // takes the snapshot: no read-write transaction is active, so safe
        #expect(db.statistics().serializable.safeReadOnlyAtBegin == before + 1)
        try await db.put("k", "changed")  // after the snapshot: invisible to it

        // Another thread holds the chain's mutex of "k" until told to let go (or two seconds have passed).
        let chain = try #require(db.directory.load("k"))
        let flags = Flags()
        let holder = Thread {
            chain.state.withLock { _ in
                flags.locked.store(true, ordering: .sequentiallyConsistent)
                let deadline = Date().addingTimeInterval(2)
                while !flags.release.load(ordering: .sequentiallyConsistent) {
                    if Date() > deadline {
                        flags.gaveUp.store(true, ordering: .sequentiallyConsistent)
                        break
                    }
                    usleep(500)
                }
            }
        }
        holder.start()
        while !flags.locked.load(ordering: .sequentiallyConsistent) { try await Task.sleep(for: .milliseconds(1)) }
        // Neither read waits for the mutex: both return while the holder still has it.
        let value = try await tx.get("k")
        let rows = try await tx.scan(.prefix("k")).map(\.value)
        let readWhileHeld = !flags.gaveUp.load(ordering: .sequentiallyConsistent)
        flags.release.store(true, ordering: .sequentiallyConsistent)
        #expect(readWhileHeld)
        #expect(value == "1")
        #expect(rows == ["1"])
        try await tx.commit()
        expectConsistent(db)
    }
}
