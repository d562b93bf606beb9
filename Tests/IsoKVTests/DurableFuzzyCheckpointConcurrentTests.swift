import Dispatch
import Foundation
@_spi(Testing) import IsoKV
import IsoKVStorage
import IsoKVTestSupport
import Synchronization
import Testing

/// Checkpoints are fuzzy copies: they pin no snapshot (garbage collection keeps running while one is written), the
/// copy may hold some keys as of before a transaction and others as of after it, and recovery — the copy, then the
/// log's records after the checkpoint's sequence — still gives exactly the committed state, whole transactions only.
/// `Concurrent`: the checkpoint's I/O queue, the log's flusher and the test task run at once (TSan runs it).
@Suite struct DurableFuzzyCheckpointConcurrentTests {
    /// Pauses the checkpoint at its first chunk write (after about 1 MiB of entries were copied, with more to
    /// come) until the test lets it go. The hook runs on the log's I/O queue, a thread the log owns: it may block.
    final class Pause: Sendable {
        let reached = Atomic<Bool>(false)
        let release = DispatchSemaphore(value: 0)
        let used = Atomic<Bool>(false)

        var hook: FaultHook {
            FaultHook { [self] point in
                if point == .checkpointWrite, !used.exchange(true, ordering: .acquiringAndReleasing) {
                    reached.store(true, ordering: .releasing)
                    release.wait()
                }
                return nil
            }
        }

        func waitUntilReached() async throws {
            while !reached.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(2)) }
        }
    }

    @Test func aCheckpointPinsNoVersionsAndItsFuzzyCopyRecoversWholeTransactions() async throws {
        let dir = TemporaryDirectory("db-fuzzy-ckpt")
        defer { dir.remove() }
        let pause = Pause()
        let db = try await Database.open(
            path: dir.path, options: durableOptions(segmentBytes: 1 << 16, faults: pause.hook))
        // 20 000 keys of ~100-byte values: about 2.5 MiB of checkpoint entries, so the first 1 MiB chunk is
        // written (and paused) with more than half of the keys still to copy.
        let keyCount = 20_000
        let keys = (0..<keyCount).map { Bytes("key-\($0)") }
        let filler = String(repeating: "x", count: 90)
        for start in stride(from: 0, to: keyCount, by: 2_000) {
            try await db.transaction(.snapshot) { tx in
                for i in start..<(start + 2_000) { try await tx.put(keys[i], Bytes("old-\(i)-\(filler)")) }
            }
        }
        let versionsBefore = db.statistics().versions
        #expect(versionsBefore == keyCount)

        let checkpoint = Task { try await db.checkpoint() }
        try await pause.waitUntilReached()
        // Mid-copy: one transaction rewrites every key (the copy holds some keys before it and some after it),
        // then one key is rewritten 100 times.
        try await db.transaction(.snapshot) { tx in
            for i in 0..<keyCount { try await tx.put(keys[i], Bytes("new-\(i)-\(filler)")) }
        }
        for n in 0..<100 { try await db.put(keys[0], Bytes("hot-\(n)")) }
        // Nothing pins the old versions: each key is back to one version (a snapshot registered for the whole
        // copy kept every version written meanwhile: 2 × keys + 100).
        #expect(db.statistics().versions == keyCount)
        // Deletions of keys the copy has (key order: "key-1…" comes before "key-9…") and may not have met yet,
        // and keys created after the copy started.
        let created = (0..<100).map { Bytes("late-\($0)") }
        try await db.transaction(.snapshot) { tx in
            for i in [1, 2, 3, 19_997, 19_998, 19_999] { try await tx.delete(keys[i]) }
            for k in created { try await tx.put(k, "created") }
        }
        pause.release.signal()
        try await checkpoint.value

        // The checkpoint really is fuzzy: entries copied before the rewrite (at or below its sequence) and after
        // it (above), and the log still holds the rewrite's record after the checkpoint.
        let state = try WriteAheadLog.check(directory: dir.path)
        let copiedBefore = state.checkpointEntries.filter { $0.version <= state.checkpointSequence }.count
        let copiedAfter = state.checkpointEntries.filter { $0.version > state.checkpointSequence }.count
        #expect(copiedBefore > 0 && copiedAfter > 0)
        #expect(state.commits.count == 102 && state.commits.allSatisfy { $0.sequence > state.checkpointSequence })

        let expected = try await contents(db, keys + created)
        #expect(expected.count == keyCount - 6 + created.count)
        let last = db.statistics().lastCommit
        await db.close()
        let reopened = try await Database.open(path: dir.path, options: durableOptions())
        let recovered = try await contents(reopened, keys + created)
        #expect(recovered == expected)  // values and versions; the deleted keys stay deleted
        #expect(recovered[keys[1]] == nil && recovered[keys[19_999]] == nil && recovered[created[99]] != nil)
        #expect(recovered[keys[0]]?.value == "hot-99")
        #expect(recovered[keys[keyCount - 7]]?.value == Bytes("new-\(keyCount - 7)-\(filler)"))
        #expect(reopened.statistics().lastCommit == last)
        await reopened.close()
    }

    /// Entries copied from commits after the checkpoint's sequence survive only with their records: the checkpoint
    /// makes the log as durable as itself before it installs the copy. `.unsafeNoSync`: a commit returns before its
    /// record is written — here the flusher's writes are slowed down, so records are still queued when the
    /// checkpoint starts — and the checkpoint waits for them: once it returns, the segment holds every record.
    @Test func unsafeNoSyncRecordsAreWrittenBeforeTheCopyIsInstalled() async throws {
        let dir = TemporaryDirectory("db-fuzzy-flush")
        defer { dir.remove() }
        let slowWrites = FaultHook { point in
            if point == .walWrite { usleep(20_000) }  // the flusher's own thread
            return nil
        }
        let db = try await Database.open(
            path: dir.path, options: durableOptions(.unsafeNoSync, segmentBytes: 1 << 20, faults: slowWrites))
        for i in 0..<500 { try await db.put(Bytes("k\(i % 50)"), Bytes("v\(i)")) }
        let last = db.statistics().lastCommit
        try await db.checkpoint()
        let state = try WriteAheadLog.check(directory: dir.path)  // beside the live store, without its lock
        #expect(state.checkpointSequence == last)
        #expect(state.segments.last?.maxSequence == last)
        await db.close()
    }

    /// `.buffered`: records are written at once but synced only at rotation and close; a checkpoint syncs the
    /// segment holding the log's tail before installing its copy (one more sync in the log's statistics).
    @Test func bufferedLogIsSyncedBeforeTheCopyIsInstalled() async throws {
        let dir = TemporaryDirectory("db-fuzzy-sync")
        defer { dir.remove() }
        let db = try await Database.open(path: dir.path, options: durableOptions(.buffered, segmentBytes: 1 << 20))
        for i in 0..<100 { try await db.put(Bytes("k\(i % 50)"), Bytes("v\(i)")) }
        let syncs = try #require(db.statistics().wal?.syncs)
        try await db.checkpoint()
        #expect(db.statistics().wal?.syncs == syncs + 1)
        await db.close()
    }

    /// A failed sync of the log's tail during a checkpoint fails the log (the fsyncgate rule: the kernel may have
    /// dropped the unsynced pages): the checkpoint throws, later commits are refused, no checkpoint is installed,
    /// and a reopen recovers what was written.
    @Test func aFailedSyncOfTheLogDuringACheckpointFailsTheLog() async throws {
        let dir = TemporaryDirectory("db-fuzzy-sync-fail")
        defer { dir.remove() }
        final class Armed: Sendable { let on = Atomic<Bool>(false) }
        let armed = Armed()
        let failSync = FaultHook { point in
            point == .walSync && armed.on.load(ordering: .acquiring) ? .fail(errno: EIO) : nil
        }
        let db = try await Database.open(
            path: dir.path, options: durableOptions(.buffered, segmentBytes: 1 << 20, faults: failSync))
        for i in 0..<50 { try await db.put(Bytes("k\(i)"), Bytes("v\(i)")) }
        armed.on.store(true, ordering: .releasing)
        await expectCode(.storageFailure) { try await db.checkpoint() }
        await expectCode(.storageFailure) { try await db.put("late", "x") }
        await db.close()
        let state = try WriteAheadLog.check(directory: dir.path)
        #expect(state.checkpointSequence == 0 && state.checkpointEntries.isEmpty)
        let reopened = try await Database.open(path: dir.path, options: durableOptions(.buffered))
        #expect(try await reopened.get("k49")?.value == "v49")
        #expect(try await reopened.get("late") == nil)
        await reopened.close()
    }
}
