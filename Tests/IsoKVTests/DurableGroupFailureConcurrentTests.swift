import Foundation
import IsoKV
import IsoKVStorage
import IsoKVTestSupport
import Synchronization
import Testing

/// A failed fsync shared by a group commit: every committer of the batch fails, none becomes visible, and a reopen
/// shows a prefix of the commit order. Real flusher thread and concurrent tasks, hence `Concurrent` (TSan runs it).
@Suite struct DurableGroupFailureConcurrentTests {
    /// Three committers queue their records while the previous commit's fsync is held (so the flusher takes all
    /// three as one batch: one write, one fdatasync); that fdatasync fails with EIO. All three get `58030`, none
    /// is visible (nor ever acknowledged), the held commit before them succeeds, and after a reopen the records
    /// found after it are a prefix of the three in log order — never a later one without an earlier one.
    @Test(.timeLimit(.minutes(1))) func failedFsyncUnderThreeConcurrentCommittersFailsAllThree() async throws {
        let dir = TemporaryDirectory("group-fsync-fail")
        defer { dir.remove() }
        let gate = SyncGate()
        let syncs = Atomic<Int>(0)
        let failFrom = Atomic<Int>(Int.max)
        let hook = FaultHook { p in
            guard p == .walSync else { return nil }
            let n = syncs.add(1, ordering: .acquiringAndReleasing).newValue
            gate.pass()  // on the log's flusher thread, which may block
            return n >= failFrom.load(ordering: .acquiring) ? .fail(errno: EIO) : nil
        }
        let db = try await Database.open(path: dir.path, options: durableOptions(.fsync, faults: hook))
        let seeded = try await db.put("seed", "0")
        gate.close()
        let blocker = Task { try await db.put("blocker", "1") }
        while !gate.hasWaiter { try await Task.sleep(for: .milliseconds(1)) }
        let held = syncs.load(ordering: .acquiring)
        let queuedBefore = try #require(db.statistics().wal?.appends)
        let keys = (0..<3).map { Bytes("committer\($0)") }
        let committers = keys.map { key in
            Task { () async -> IsoKVError? in
                do {
                    let tx = try await db.begin(.snapshot)
                    try await tx.put(key, "never visible")
                    try await tx.commit()
                    return nil
                } catch let e as IsoKVError { return e } catch { return IsoKVError(.internalError, "\(error)") }
            }
        }
        // All three records are queued behind the held fsync: the flusher will take them as one batch.
        while (db.statistics().wal?.appends ?? 0) < queuedBefore + 3 { try await Task.sleep(for: .milliseconds(1)) }
        for key in keys { #expect(try await db.get(key) == nil) }
        failFrom.store(held + 1, ordering: .releasing)
        gate.open()
        let blockerVersion = try await blocker.value
        for (key, task) in zip(keys, committers) {
            let failure = await task.value
            #expect(failure?.code == .storageFailure, "\(key): \(String(describing: failure))")
            #expect(try await db.get(key) == nil)
        }
        #expect(syncs.load(ordering: .acquiring) == held + 1, "the three shared one fdatasync")
        let reader = try await db.begin(.snapshot)
        for key in keys { #expect(try await reader.get(key) == nil) }
        try await reader.rollback()
        await db.close()

        // Reopen: the acknowledged commits are there; of the three, a prefix of the log order.
        let wal = try WriteAheadLog.check(directory: dir.path)
        let order = wal.commits.filter { $0.sequence > blockerVersion }.flatMap { $0.writes.map { Bytes($0.key) } }
        let reopened = try await Database.open(path: dir.path, options: durableOptions(.fsync))
        #expect(try await reopened.get("seed")?.version == seeded)
        #expect(try await reopened.get("blocker")?.version == blockerVersion)
        var present: [Bytes] = []
        for key in keys where try await reopened.get(key) != nil { present.append(key) }
        #expect(Set(order) == Set(present), "recovered \(present), WAL \(order)")
        #expect(order.count <= 3 && Set(order).isSubset(of: keys))
        // A prefix: the records recovered are consecutive commit numbers right after the blocker.
        let sequences = wal.commits.map(\.sequence).filter { $0 > blockerVersion }
        #expect(sequences == Array((blockerVersion + 1)..<(blockerVersion + 1 + UInt64(sequences.count))))
        print("group fsync failure: 3 × 58030, reopen found \(present.count) of the 3 (a prefix)")
        await reopened.close()
    }
}
