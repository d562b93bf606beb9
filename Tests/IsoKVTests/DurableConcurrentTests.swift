import Foundation
import IsoKV
import IsoKVStorage
import Testing
import IsoKVTestSupport

/// Concurrent committers on a durable database: group commit, publication in commit order, background
/// checkpoints and an online backup while writers run.
@Suite struct DurableConcurrentTests {
    static let accounts = 12
    static let initial: Int64 = 500

    @Test func transfersWithCheckpointsAndBackupKeepTheInvariantAndSurviveReopen() async throws {
        let dir = TemporaryDirectory("db-conc"), backup = TemporaryDirectory("db-conc-backup"),
            fileBackup = TemporaryDirectory("db-conc-files")
        defer { dir.remove(); backup.remove(); fileBackup.remove() }
        let options = durableOptions(checkpointWALBytes: 8 << 10, segmentBytes: 4096)
        let db = try await Database.open(path: dir.path, options: options)
        try await db.transaction(.snapshot) { tx in
            for a in 0..<Self.accounts { try await tx.put(Bytes("acct\(a)"), Bytes(Self.initial)) }
        }
        let writers = 8, perWriter = 40
        let committed = try await withThrowingTaskGroup(of: Int.self) { group in
            for w in 0..<writers {
                group.addTask {
                    var rng = SystemRandomNumberGenerator()
                    for _ in 0..<perWriter {
                        let from = Int.random(in: 0..<Self.accounts, using: &rng)
                        let to = (from + Int.random(in: 1..<Self.accounts, using: &rng)) % Self.accounts
                        // Hot accounts: 40001/40P01 are frequent (more so under TSan); retry until it commits.
                        try await db.transaction(.snapshot, retry: RetryPolicy(maxAttempts: 10_000)) { tx in
                            let a = Bytes("acct\(from)"), b = Bytes("acct\(to)")
                            let na = try await tx.get(a)!.int64! - 1, nb = try await tx.get(b)!.int64! + 1
                            try await tx.put(a, Bytes(na))
                            try await tx.put(b, Bytes(nb))
                        }
                    }
                    _ = w
                    return perWriter
                }
            }
            // Readers: every snapshot sees a whole number of transfers.
            group.addTask {
                for _ in 0..<30 {
                    let total = try await db.transaction(.snapshot, readOnly: true) { tx in
                        var sum: Int64 = 0
                        for kv in try await tx.scan(prefix: "acct") { sum += kv.value.int64 ?? 0 }
                        return sum
                    }
                    #expect(total == Int64(Self.accounts) * Self.initial)
                    try await Task.sleep(for: .milliseconds(1))
                }
                return 0
            }
            // An online backup in the middle of the run.
            group.addTask {
                try await Task.sleep(for: .milliseconds(5))
                try await db.backup(to: backup.path)
                return 0
            }
            // And one from the files, as `isokv backup` takes it from another process, while segments rotate and
            // background checkpoints delete them.
            group.addTask {
                try await Task.sleep(for: .milliseconds(10))
                _ = try await Database.backup(directory: dir.path, to: fileBackup.path)
                return 0
            }
            return try await group.reduce(0, +)
        }
        #expect(committed == writers * perWriter)
        // One record per committed transaction (transfers that hit 40001/40P01 and retried logged nothing).
        #expect(db.statistics().wal?.appends == UInt64(committed + 1))
        let keys = (0..<Self.accounts).map { Bytes("acct\($0)") }
        let before = try await contents(db, keys)
        let last = db.statistics().lastCommit
        await db.close()  // waits for a background checkpoint still running: quiescent afterwards
        expectConsistent(db)

        let reopened = try await Database.open(path: dir.path, options: options)
        #expect(try await contents(reopened, keys) == before)
        #expect(reopened.statistics().lastCommit == last)
        expectConsistent(reopened)
        await reopened.close()

        let copy = try await Database.open(path: backup.path, options: durableOptions())
        let copied = try await contents(copy, keys)
        #expect(copied.count == Self.accounts)
        #expect(copied.values.reduce(Int64(0)) { $0 + ($1.value.int64 ?? 0) } == Int64(Self.accounts) * Self.initial)
        #expect(copy.statistics().lastCommit <= last)
        await copy.close()
        let fileCopy = try await Database.open(path: fileBackup.path, options: durableOptions())
        let fromFiles = try await contents(fileCopy, keys)
        #expect(fromFiles.count == Self.accounts)
        #expect(fromFiles.values.reduce(Int64(0)) { $0 + ($1.value.int64 ?? 0) } == Int64(Self.accounts) * Self.initial)
        await fileCopy.close()
    }

    /// Group commit acknowledges records in log order, and publication keeps commit order: every snapshot sees a
    /// prefix of the commit history (if it sees commit v, it sees every commit numbered below v).
    @Test func snapshotsSeeAPrefixOfTheCommitHistory() async throws {
        let dir = TemporaryDirectory("db-prefix")
        defer { dir.remove() }
        let db = try await Database.open(path: dir.path, options: durableOptions())
        let writers = 8, perWriter = 25
        async let seen: [Set<Bytes>] = {
            var out: [Set<Bytes>] = []
            for _ in 0..<40 {
                let keys = try await db.transaction(.snapshot, readOnly: true) { tx in
                    Set(try await tx.scan(prefix: "w").map(\.key))
                }
                out.append(keys)
                try await Task.sleep(for: .microseconds(300))
            }
            return out
        }()
        // Each commit creates one new key; its commit number is the version `put` returns.
        let versions = try await withThrowingTaskGroup(of: [(Bytes, UInt64)].self) { group in
            for w in 0..<writers {
                group.addTask {
                    var mine: [(Bytes, UInt64)] = []
                    for i in 0..<perWriter {
                        let key = Bytes("w\(w)-\(i)")
                        mine.append((key, try await db.put(key, "x")))
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [Bytes: UInt64]()) { map, pairs in
                for (k, v) in pairs { map[k] = v }
            }
        }
        #expect(versions.count == writers * perWriter)
        #expect(Set(versions.values).count == versions.count)
        for keys in try await seen {
            guard let top = keys.compactMap({ versions[$0] }).max() else { continue }
            let missing = versions.filter { $0.value <= top && !keys.contains($0.key) }
            #expect(missing.isEmpty, "a snapshot saw commit \(top) but not \(missing.values.sorted().prefix(5))")
        }
        await db.close()
        expectConsistent(db)
    }
}
