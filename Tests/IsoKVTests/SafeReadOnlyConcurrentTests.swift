import Foundation
@_spi(Testing) @testable import IsoKV
import IsoKVCore
import Testing

/// A `.serializable` read-only transaction found safe (untracked by SSI) reads as a `.snapshot` one does: lock-free
/// committed reads at its snapshot, points and scans, taking no chain lock — and still exactly its snapshot.
///
/// Debug builds count the chain locks each thread takes (`ChainLockStripes.takenOnThisThread`); the reads below do
/// not suspend, so they run on the test's thread. (Holding a chain's mutex from another thread instead, to see
/// whether a read waits, is not safe in a suite: the mutexes are stripes shared by every database, and other tests'
/// cooperative threads would wait on the held stripe.)
@Suite("Safe read-only serializable transactions")
struct SafeReadOnlyConcurrentTests {
    #if DEBUG
        @Test func aSafeReadOnlyTransactionReadsWithoutChainLocks() async throws {
            let db = makeDatabase()
            try await db.put("k", "1")
            try await db.put("l", "2")
            let before = db.statistics().serializable.safeReadOnlyAtBegin
            let tx = try await db.begin(.serializable, readOnly: true)
            #expect(try await tx.get("l") == "2")  // takes the snapshot: no read-write transaction is active, so safe
            #expect(db.statistics().serializable.safeReadOnlyAtBegin == before + 1)
            try await db.put("k", "changed")  // after the snapshot: invisible to it

            let thread = pthread_self()
            let taken = ChainLockStripes.takenOnThisThread
            let value = try await tx.get("k")
            let rows = try await tx.scan(.prefix("k")).map(\.value)
            // (A read that suspended could resume on another thread; then the count says nothing.)
            if pthread_equal(thread, pthread_self()) != 0 {
                #expect(ChainLockStripes.takenOnThisThread == taken)
            }
            #expect(value == "1")
            #expect(rows == ["1"])
            try await tx.commit()

            // The counter counts: a tracked transaction's reads take chains' locks (its first read is deferred and
            // lock-free; the second is tracked, and so then is the first).
            let writer = try await db.begin(.serializable)
            try await writer.put("m", "3")
            let takenByWriter = ChainLockStripes.takenOnThisThread
            let thread2 = pthread_self()
            _ = try await writer.get("k")
            _ = try await writer.get("l")
            if pthread_equal(thread2, pthread_self()) != 0 {
                #expect(ChainLockStripes.takenOnThisThread > takenByWriter)
            }
            try await writer.commit()
            expectConsistent(db)
        }
    #endif
}
