import Foundation
import IsoKV
import IsoKVStorage
import Testing
import IsoKVTestSupport

/// `isokv check` (engine-level lines) and `isokv backup` on a data directory made by `Database.open`.
@Suite struct DurableCommandLineTests {
    @Test func checkAndBackupOfALiveStore() async throws {
        let dir = TemporaryDirectory("cli-db"), dest = TemporaryDirectory("cli-dest")
        defer { dir.remove(); dest.remove() }
        let db = try await Database.open(path: dir.path, options: durableOptions(segmentBytes: 4096))
        for i in 0..<60 { try await db.put(Bytes("k\(i % 25)"), Bytes("v\(i)")) }
        try await db.checkpoint()
        #expect(try await db.delete("k3"))
        let last = db.statistics().lastCommit

        // Both run while this process holds the store open (they do not take its lock).
        let check = try IsokvExecutable.run(["check", dir.path])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains("engine: 24 live keys, last commit sequence \(last)"))
        #expect(check.stdout.contains("engine check: consistent (24 chains, 24 versions"), "\(check.stdout)")
        let backup = try IsokvExecutable.run(["backup", dir.path, dest.path + "/copy"])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(backup.stdout.contains("24 live keys, last commit \(last)"))
        let again = try IsokvExecutable.run(["backup", dir.path, dest.path + "/copy"])
        #expect(again.status == 1)
        #expect(again.stderr.contains("backup failed"))
        let keys = (0..<25).map { Bytes("k\($0)") }
        let original = try await contents(db, keys)
        await db.close()

        let copy = try await Database.open(path: dest.path + "/copy", options: durableOptions())
        #expect(try await contents(copy, keys) == original)
        #expect(copy.statistics().lastCommit == last)
        await copy.close()
    }

    /// A store whose files are all valid (CRCs match, recovery accepts it) but whose checkpoint holds a version
    /// above its own commit number: the storage half passes, the engine check after recovery reports the key and
    /// fails the command.
    @Test func checkRunsTheEngineCheckerAfterRecovery() async throws {
        let dir = TemporaryDirectory("cli-check-engine")
        defer { dir.remove() }
        try await writeCheckpointWithAFutureVersion(dir.path)
        let check = try IsokvExecutable.run(["check", dir.path])
        #expect(check.status == 1, "\(check.stdout)")
        #expect(check.stdout.contains("engine: 2 live keys, last commit sequence 3"), "\(check.stdout)")
        #expect(check.stderr.contains("engine check: 1 problem"), "\(check.stderr)")
        #expect(check.stderr.contains("versionAfterLastCommit (key \"late\")"), "\(check.stderr)")
        #expect(!check.stdout.split(separator: "\n").contains("ok"))
    }

    @Test func benchDurabilityThroughTheEngineReportsEveryMode() throws {
        let dir = TemporaryDirectory("cli-bench")
        defer { dir.remove() }
        let result = try IsokvExecutable.run([
            "bench", "durability", "--engine", "--writers", "4", "--seconds", "0.05",
            "--directory", dir.path, "--format", "json"
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let rows = json?["results"] as? [[String: Any]] ?? []
        #expect(rows.compactMap { $0["name"] as? String } == ["raw", "unsafeNoSync", "buffered", "fsync"])
        for row in rows { #expect((row["commitsPerSecond"] as? Double ?? 0) > 0) }
    }
}
