import Foundation
import IsoKV
import IsoKVStorage
import IsoKVSync
import Synchronization
import Testing
import IsoKVTestSupport

/// `Database.open(path:)`: round trips, reopen, checkpoints, backup, lock, corruption and failpoints through the
/// engine. Mostly one committer, but with the log's flusher threads and a few tasks, hence `Concurrent` (TSan runs
/// it). More committers: `DurableConcurrentTests`; the SIGKILL test: `DurableCrashTests`.
@Suite struct DurableDatabaseConcurrentTests {
    @Test func roundTripKeepsValuesVersionsAndCommitNumbersAcrossReopen() async throws {
        let dir = TemporaryDirectory("db-roundtrip")
        defer { dir.remove() }
        var db = try await Database.open(path: dir.path, options: durableOptions())
        let v1 = try await db.put("a", "1")
        try await db.transaction(.snapshot) { tx in
            try await tx.put("b", "2")
            try await tx.put("c", "3")
        }
        _ = try await db.increment("n", by: 41)
        #expect(try await db.delete("c"))
        let ro = try await db.begin(.snapshot, readOnly: true)
        _ = try await ro.get("a")
        try await ro.commit()
        let rolled = try await db.begin(.snapshot)
        try await rolled.put("never", "x")
        try await rolled.rollback()
        let before = try await contents(db, ["a", "b", "c", "n", "never"])
        let last = db.statistics().lastCommit
        // Only transactions with writes are logged, one record each: put, the 2-key transaction, increment, delete.
        #expect(db.statistics().wal?.appends == 4)
        await db.close()
        await expectCode(.databaseClosed) { try await db.put("late", "x") }

        db = try await Database.open(path: dir.path, options: durableOptions())
        #expect(try await contents(db, ["a", "b", "c", "n", "never"]) == before)
        #expect(before["a"]?.version == v1)
        #expect(before["c"] == nil && before["never"] == nil)
        #expect(try await db.get("n")?.value.int64 == 41)
        #expect(db.statistics().lastCommit == last)
        // Commit numbers continue after the recovered ones: versions (ETags) never repeat across restarts.
        let v2 = try await db.put("a", "again")
        #expect(v2 > last)
        try await db.put("a", "cas", ifVersion: v2)
        await db.close()
        db = try await Database.open(path: dir.path, options: durableOptions())
        #expect(try await db.get("a")?.value == "cas")
        #expect(try #require(try await db.get("a")).version > v2)
        await db.close()
    }

    @Test(arguments: [Database.Durability.fsync, .buffered, .unsafeNoSync])
    func everyModeRecoversAfterClose(_ mode: Database.Durability) async throws {
        let dir = TemporaryDirectory("db-mode")
        defer { dir.remove() }
        var db = try await Database.open(path: dir.path, options: durableOptions(mode, segmentBytes: 4096))
        for i in 0..<300 {
            // A reopen after 100 starts a new segment in every mode, so recovery always spans several segments.
            if i == 100 {
                await db.close()
                db = try await Database.open(path: dir.path, options: durableOptions(mode, segmentBytes: 4096))
            }
            try await db.put(Bytes("k\(i % 37)"), Bytes("v\(i)"))
        }
        let keys = (0..<37).map { Bytes("k\($0)") }
        let before = try await contents(db, keys)
        let rotations = try #require(db.statistics().wal).segmentsCreated
        await db.close()
        #expect(dir.segments().count > 1)
        // Rotation by size: a committer in `.fsync`/`.buffered` waits for its write, so batches stay small and the
        // second session's 200 records (~40 bytes each) cross the 4 KiB limit. `.unsafeNoSync` returns at enqueue:
        // a slow flusher may write everything queued as one batch, and a batch never spans segments.
        if mode != .unsafeNoSync { #expect(rotations > 1, "\(mode): no rotation in the second session") }
        db = try await Database.open(path: dir.path, options: durableOptions(mode))
        #expect(try await contents(db, keys) == before)
        await db.close()
    }

    @Test func checkpointThenReopenDeletesCoveredSegments() async throws {
        let dir = TemporaryDirectory("db-ckpt")
        defer { dir.remove() }
        var db = try await Database.open(path: dir.path, options: durableOptions(segmentBytes: 4096))
        for i in 0..<300 { try await db.put(Bytes("k\(i % 50)"), Bytes("before-\(i)")) }
        #expect(try await db.delete("k7"))
        let segmentsBefore = dir.segments().count
        try await db.checkpoint()
        #expect(dir.segments().count < segmentsBefore)
        for i in 0..<20 { try await db.put(Bytes("k\(i)"), Bytes("after-\(i)")) }
        let keys = (0..<50).map { Bytes("k\($0)") }
        let before = try await contents(db, keys)
        let last = db.statistics().lastCommit
        await db.close()
        let summary = try Database.inspect(path: dir.path)
        #expect(summary.liveKeys == 50)  // k7 was deleted before the checkpoint and written again after it
        #expect(summary.lastCommit == last)
        #expect(summary.checkpointSequence > 0 && summary.commitsAfterCheckpoint == 20)
        db = try await Database.open(path: dir.path, options: durableOptions())
        #expect(try await contents(db, keys) == before)
        #expect(db.statistics().lastCommit == last)
        await db.close()
    }

    @Test func backgroundCheckpointsKeepTheWALBounded() async throws {
        let dir = TemporaryDirectory("db-bgckpt")
        defer { dir.remove() }
        var db = try await Database.open(
            path: dir.path,
            options: durableOptions(.buffered, checkpointWALBytes: 16 << 10, segmentBytes: 4096))
        for i in 0..<3000 { try await db.put(Bytes("k\(i % 100)"), Bytes("value-\(i)")) }
        // The checkpoint runs in the background: wait (bounded) for one to complete.
        for _ in 0..<2000 where (db.statistics().wal?.checkpoints ?? 0) == 0 {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect((db.statistics().wal?.checkpoints ?? 0) > 0)
        #expect((db.statistics().wal?.segmentsDeleted ?? 0) > 0)
        let keys = (0..<100).map { Bytes("k\($0)") }
        let before = try await contents(db, keys)
        await db.close()
        expectConsistent(db)
        #expect(try Database.inspect(path: dir.path).checkpointSequence > 0)
        db = try await Database.open(path: dir.path, options: durableOptions())
        #expect(try await contents(db, keys) == before)
        await db.close()
    }

    @Test func backupOpensAsAConsistentCopy() async throws {
        let dir = TemporaryDirectory("db-src"), dest = TemporaryDirectory("db-dest"),
            dest2 = TemporaryDirectory("db-dest2")
        defer { dir.remove(); dest.remove(); dest2.remove() }
        let db = try await Database.open(path: dir.path, options: durableOptions(segmentBytes: 4096))
        for i in 0..<100 { try await db.put(Bytes("k\(i % 30)"), Bytes("v\(i)")) }
        let keys = (0..<30).map { Bytes("k\($0)") }
        let snapshot = try await contents(db, keys)
        let copied = try await db.backup(to: dest.path)
        #expect(copied == db.statistics().lastCommit)
        try await db.put("k0", "after the backup")
        // A directory that already holds a store is refused.
        let exists = await expectCode(.storageFailure) { try await db.backup(to: dest.path) }
        #expect(exists?.file == dest.path)
        // The static form reads the directory of a store that is open (here, by us) without taking its lock.
        let summary = try await Database.backup(directory: dir.path, to: dest2.path)
        #expect(summary.lastCommit == db.statistics().lastCommit && summary.liveKeys == 30)
        await db.close()

        let copy = try await Database.open(path: dest.path, options: durableOptions())
        #expect(try await contents(copy, keys) == snapshot)
        #expect(copy.statistics().lastCommit == copied)
        #expect(try await copy.put("new", "x") > copied)
        await copy.close()
        let copy2 = try await Database.open(path: dest2.path, options: durableOptions())
        #expect(try await copy2.get("k0")?.value == "after the backup")
        await copy2.close()
    }

    @Test func secondOpenOfALockedDirectoryFailsClearly() async throws {
        let dir = TemporaryDirectory("db-lock")
        defer { dir.remove() }
        let db = try await Database.open(path: dir.path, options: durableOptions())
        let locked = await expectCode(.objectInUse) {
            _ = try await Database.open(path: dir.path, options: durableOptions())
        }
        #expect(locked?.file == dir.path)
        await db.close()
        let again = try await Database.open(path: dir.path, options: durableOptions())
        await again.close()
    }

    @Test func tornTailIsCutAndCorruptionIsATypedError() async throws {
        let dir = TemporaryDirectory("db-corrupt")
        defer { dir.remove() }
        var db = try await Database.open(path: dir.path, options: durableOptions())
        for i in 0..<10 { try await db.put(Bytes("k\(i)"), Bytes("v\(i)")) }
        await db.close()
        let segment = dir.file(dir.segments()[0])
        let size = try #require(try FileManager.default.attributesOfItem(atPath: segment)[.size] as? NSNumber).intValue

        // A torn tail (the last record cut in the middle) is a crash, not corruption: the last commit is dropped.
        try rewriteFile(segment) { $0.removeLast(7) }
        db = try await Database.open(path: dir.path, options: durableOptions())
        #expect(try await db.get("k8")?.value == "v8")
        #expect(try await db.get("k9") == nil)
        await db.close()

        // A flipped byte in the middle of the log (valid records after it) is refused with file and offset.
        let first = dir.file(dir.segments()[0])
        try rewriteFile(first) { $0[60] ^= 0xFF }
        do {
            _ = try await Database.open(path: dir.path, options: durableOptions())
            Issue.record("open accepted a corrupt segment")
        } catch let error as IsoKVError {
            #expect(error.code == .dataCorrupted)
            #expect(error.file == first)
            #expect(error.offset.map { $0 > 0 && $0 < Int64(size) } == true)
        }
        try rewriteFile(first) { $0[60] ^= 0xFF }

        // A damaged checkpoint is refused too.
        db = try await Database.open(path: dir.path, options: durableOptions())
        try await db.checkpoint()
        await db.close()
        try rewriteFile(dir.file(DataDirectory.checkpointName)) { $0[$0.count / 2] ^= 0x01 }
        await expectCode(.dataCorrupted) { _ = try await Database.open(path: dir.path, options: durableOptions()) }
        let inspected = await expectCode(.dataCorrupted) { _ = try Database.inspect(path: dir.path) }
        #expect(inspected?.file == dir.file(DataDirectory.checkpointName))
    }

    /// A fault the log cannot recover from in place, and where it strikes.
    struct Fault: Sendable, CustomStringConvertible {
        var point: FaultPoint
        var action: FaultAction
        var description: String { "\(point) \(action)" }
    }

    @Test(arguments: [
        Fault(point: .walSync, action: .fail(errno: EIO)),
        Fault(point: .walWrite, action: .fail(errno: ENOSPC)),
        Fault(point: .walWrite, action: .partialWrite(bytes: 7, errno: ENOSPC)),
        Fault(point: .segmentRotate, action: .fail(errno: EIO))
    ])
    func failedWriteOrFsyncFailsTheCommitAndTheStoreRefusesWrites(_ fault: Fault) async throws {
        let dir = TemporaryDirectory("db-fault")
        defer { dir.remove() }
        let armed = Atomic<Bool>(false)
        let hook = FaultHook { p in p == fault.point && armed.load(ordering: .relaxed) ? fault.action : nil }
        var db = try await Database.open(path: dir.path, options: durableOptions(segmentBytes: 4096, faults: hook))
        let good = try await db.put("a", "acknowledged")
        armed.store(true, ordering: .relaxed)
        // Write and fsync faults strike the next commit; a rotation fault the first commit that fills the segment.
        var failure: IsoKVError?
        var accepted: [Bytes] = []
        for i in 0..<200 {
            do {
                try await db.put(Bytes("fill\(i)"), Bytes(String(repeating: "x", count: 100)))
                accepted.append(Bytes("fill\(i)"))
            } catch let e as IsoKVError {
                failure = e
                break
            }
        }
        #expect(failure?.code == .storageFailure)
        #expect(failure?.isRetryable == false)
        let failedKey = Bytes("fill\(accepted.count)")
        // Not durable → never visible, and its row lock is free again.
        #expect(try await db.get(failedKey) == nil)
        let probe = try await db.begin(.readCommitted)
        _ = try await probe.lock(failedKey, .forUpdate, wait: .noWait)
        try await probe.rollback()
        // The store refuses every later commit, transactions included; reads keep working.
        let tx = try await db.begin(.snapshot)
        #expect(try await tx.get("a") == "acknowledged")
        try await tx.put("b", "refused")
        await expectCode(.storageFailure) { try await tx.commit() }
        await expectCode(.transactionAborted) { try await tx.get("a") }
        try await tx.rollback()
        await expectCode(.storageFailure) { try await db.put("c", "refused") }
        #expect(try await db.get("a") == VersionedValue(value: "acknowledged", version: good))
        #expect(try await db.get("b") == nil)
        await db.close()
        expectConsistent(db)  // the failed commit's versions were taken back out; published < last is allowed

        armed.store(false, ordering: .relaxed)
        db = try await Database.open(path: dir.path, options: durableOptions())
        #expect(try await db.get("a")?.version == good)
        for key in accepted { #expect(try await db.get(key) != nil) }  // acknowledged before the fault
        // The failed commit may or may not be there (never partly); the refused ones are not.
        #expect(try await db.get("b") == nil)
        #expect(try await db.get("c") == nil)
        try await db.put("after", "reopen")  // a reopened store accepts commits again
        await db.close()
    }

    @Test(arguments: [FaultPoint.checkpointWrite, .checkpointSync, .checkpointRename])
    func aFailedCheckpointLeavesTheStoreRunning(_ point: FaultPoint) async throws {
        let dir = TemporaryDirectory("db-ckpt-fault")
        defer { dir.remove() }
        let hook = FaultHook { p in p == point ? .fail(errno: EIO) : nil }
        var db = try await Database.open(path: dir.path, options: durableOptions(segmentBytes: 4096, faults: hook))
        for i in 0..<50 { try await db.put(Bytes("k\(i)"), Bytes("v\(i)")) }
        await expectCode(.storageFailure) { try await db.checkpoint() }
        try await db.put("k0", "after the failed checkpoint")
        await db.close()
        db = try await Database.open(path: dir.path, options: durableOptions())
        #expect(try await db.get("k0")?.value == "after the failed checkpoint")
        #expect(try await db.get("k49")?.value == "v49")
        await db.close()
    }

    /// Random damage to the WAL: a truncation is a torn tail (open succeeds with exactly the records wholly before
    /// the cut); a flipped byte gives either a typed error or exactly the records before the damaged one (the
    /// intact prefix, counted: not fewer, not more); never a crash, never half a transaction. The record
    /// boundaries are measured independently: the segment's size after each acknowledged `.fsync` commit.
    @Test func randomTruncationsAndFlipsGiveTheIntactPrefixOrATypedError() async throws {
        let dir = TemporaryDirectory("db-random-damage")
        defer { dir.remove() }
        let db = try await Database.open(path: dir.path, options: durableOptions(.fsync))
        let segment = dir.file(try #require(dir.segments().first))
        // ends[i]: the segment's size once commit i (1-based) is acknowledged; ends[0]: before any commit.
        var ends = [fileSize(segment)]
        for i in 1...20 {
            try await db.transaction(.snapshot) { tx in
                try await tx.put("a", Bytes(Int64(i)))
                try await tx.put("b", Bytes(Int64(i)))
            }
            ends.append(fileSize(segment))
        }
        await db.close()
        #expect(dir.segments().count == 1)
        let pristine = try Data(contentsOf: URL(fileURLWithPath: segment))
        #expect(pristine.count == ends[20], "close wrote to the segment: \(pristine.count) != \(ends[20])")
        #expect(zip(ends, ends.dropFirst()).allSatisfy { $0 < $1 }, "\(ends)")
        var rng = SplitMix64(seed: testSeed("randomTruncationsAndFlipsGiveTheIntactPrefixOrATypedError"))
        var opened = 0, refused = 0
        for round in 0..<40 {
            try pristine.write(to: URL(fileURLWithPath: segment))
            for name in dir.segments().dropFirst() { try FileManager.default.removeItem(atPath: dir.file(name)) }
            let truncate = round % 2 == 0
            let offset = Int.random(in: ends[0]..<pristine.count, using: &rng)
            try rewriteFile(segment) { bytes in
                if truncate {
                    bytes.removeLast(bytes.count - offset)
                } else {
                    bytes[offset] ^= UInt8.random(in: 1...255, using: &rng)
                }
            }
            // The records wholly before the damaged byte (or the cut) are intact; the damaged one is not.
            let intact = ends.lastIndex { $0 <= offset } ?? 0
            let what = "round \(round): \(truncate ? "cut" : "flip") at \(offset) (records end at \(ends))"
            do {
                let damaged = try await Database.open(path: dir.path, options: durableOptions())
                let a = try await damaged.get("a")?.value.int64, b = try await damaged.get("b")?.value.int64
                #expect(a == b, "\(what): half a transaction visible (a=\(a as Any), b=\(b as Any))")
                #expect(Int(a ?? 0) == intact, "\(what): recovered \(a ?? 0) commits, intact prefix \(intact)")
                await damaged.close()
                opened += 1
            } catch let error as IsoKVError {
                #expect(error.code == .dataCorrupted, "\(what): \(error)")
                #expect(!truncate, "\(what): a truncation is a torn tail, not \(error)")
                refused += 1
            }
        }
        #expect(opened > 0)
        print("WAL damage: \(opened) opened with the intact prefix, \(refused) refused")
    }

    @Test func aCommitIsVisibleOnlyOnceDurableAndKeepsItsRowLockUntilThen() async throws {
        let dir = TemporaryDirectory("db-visible")
        defer { dir.remove() }
        let gate = SyncGate()
        let hook = FaultHook { p in
            if p == .walSync { gate.pass() }  // runs on the log's flusher thread, which may block
            return nil
        }
        let db = try await Database.open(path: dir.path, options: durableOptions(faults: hook))
        let v1 = try await db.put("k", "old")
        gate.close()
        let writer = Task { try await db.put("k", "new") }
        while !gate.hasWaiter { try await Task.sleep(for: .milliseconds(1)) }
        // The record is written and its fsync is held: the commit is neither acknowledged nor visible.
        #expect(try await db.get("k") == VersionedValue(value: "old", version: v1))
        let reader = try await db.begin(.readCommitted)
        #expect(try await reader.get("k") == "old")
        try await reader.commit()
        let other = try await db.begin(.readCommitted)
        await expectCode(.lockNotAvailable) { try await other.lock("k", .forUpdate, wait: .noWait) }
        try await other.rollback()
        // Installed above `published` while its writer holds the row: a state the design allows, at any instant.
        expectConsistent(db, .concurrent)
        gate.open()
        let v2 = try await writer.value
        #expect(v2 > v1)
        #expect(try await db.get("k") == VersionedValue(value: "new", version: v2))
        await db.close()
        expectConsistent(db)
    }
}

/// A gate for the log's flusher thread: `pass()` blocks while closed (it runs on a thread the log owns, never on
/// a cooperative one); the test polls `hasWaiter`.
final class SyncGate: Sendable {
    // `Locked` (a pthread mutex), not `Synchronization.Mutex`: ThreadSanitizer cannot see the latter's contended
    // slow path and reports a race between `pass()` and `hasWaiter`.
    private let state = Locked<(closed: Bool, waiting: Bool)>((false, false))
    private let condition = DispatchSemaphore(value: 0)

    func close() { state.withLock { $0.closed = true } }
    var hasWaiter: Bool { state.withLock { $0.waiting } }

    func pass() {
        let wait = state.withLock { s -> Bool in
            if s.closed { s.waiting = true }
            return s.closed
        }
        if wait { condition.wait() }
    }

    func open() {
        let wake = state.withLock { s -> Bool in
            defer { s.closed = false; s.waiting = false }
            return s.waiting
        }
        if wake { condition.signal() }
    }
}
