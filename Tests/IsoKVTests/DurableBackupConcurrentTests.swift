import Foundation
@_spi(Testing) import IsoKV
import IsoKVStorage
import IsoKVTestSupport
import IsoKVSync
import Testing

/// An online backup under load: writers keep committing and one group commit is held mid-fsync while the backup
/// is taken. Real flusher thread and concurrent tasks, hence `Concurrent` (TSan runs it).
@Suite struct DurableBackupConcurrentTests {
    static let keys = (0..<16).map { Bytes("k\($0)") } + [Bytes("held")]

    /// Four writers commit to 16 keys; after a while the log's next fdatasync is held (its batch written, not
    /// acknowledged, not visible) and a commit of `held` joins the stalled queue; the backup is taken then, and the
    /// writers go on once it is released. The copy must be exactly the committed state at the commit number it
    /// reports — compared with the test's own replay of the source's WAL up to that number (every key, value and
    /// version; no checkpoint runs, so the WAL holds every record) — and that number lies strictly inside the run: after its first commits, before its last, and
    /// before the held commit (which the copy does not contain).
    @Test(.timeLimit(.minutes(1))) func backupDuringWritesAndAHeldFsyncIsExactlyItsLastCommit() async throws {
        let dir = TemporaryDirectory("backup-src"), dest = TemporaryDirectory("backup-dest")
        defer { dir.remove(); dest.remove() }
        try FileManager.default.removeItem(atPath: dest.path)  // the backup creates it
        let gate = SyncGate()
        // Holds the source log's fsyncs while closed (the backup writes its copy through a log of its own,
        // without this hook).
        let hook = FaultHook { p in
            if p == .walSync { gate.pass() }  // on the log's flusher thread, which may block
            return nil
        }
        let db = try await Database.open(
            path: dir.path, options: durableOptions(.fsync, segmentBytes: 4096, faults: hook))
        let first = try await db.put("k0", "start")
        let stop = Locked(false)
        let writers = (0..<4).map { w in
            Task {
                var n = 0
                while !stop.withLock({ $0 }) {
                    n += 1
                    try await db.put(Self.keys[(w * 5 + n) % 16], Bytes("w\(w)-\(n)"))
                }
                return n
            }
        }
        while db.statistics().lastCommit < first + 100 { try await Task.sleep(for: .milliseconds(1)) }
        gate.close()
        while !gate.hasWaiter { try await Task.sleep(for: .milliseconds(1)) }
        let held = Task { try await db.put("held", "not yet durable") }
        let copied = try await db.backup(to: dest.path)
        #expect(gate.hasWaiter, "the fsync must still be held when the backup returns")
        gate.open()
        let heldVersion = try await held.value
        while db.statistics().lastCommit < copied + 100 { try await Task.sleep(for: .milliseconds(1)) }
        stop.withLock { $0 = true }
        for w in writers { _ = try await w.value }
        let last = db.statistics().lastCommit
        await db.close()

        #expect(first < copied && copied < heldVersion && copied < last, "first \(first) copied \(copied) last \(last)")
        // The test's replay of the source's WAL up to `copied` (no checkpoint ran: it is all records).
        let wal = try WriteAheadLog.check(directory: dir.path)
        try #require(wal.checkpointSequence == 0, "no checkpoint: every record since the start is in the WAL")
        var expected: [Bytes: VersionedValue] = [:]
        for e in wal.checkpointEntries {
            if let v = e.value { expected[Bytes(e.key)] = VersionedValue(value: Bytes(v), version: e.version) }
        }
        for record in wal.commits where record.sequence <= copied {
            for w in record.writes {
                expected[Bytes(w.key)] = w.value.map { VersionedValue(value: Bytes($0), version: w.version) }
            }
        }
        let copy = try await Database.open(path: dest.path, options: durableOptions(.fsync))
        #expect(copy.statistics().lastCommit == copied)
        let got = try await contents(copy, Self.keys)
        #expect(got == expected)
        #expect(got[Bytes("held")] == nil)
        await copy.close()
        print("backup under load: copied commit \(copied) of \(first)…\(last), held commit \(heldVersion)")
    }
}
