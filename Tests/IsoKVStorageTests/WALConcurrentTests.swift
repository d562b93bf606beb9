import IsoKVSync
import Foundation
import Testing
@testable import IsoKVStorage
import IsoKVTestSupport

@Suite struct WALConcurrentTests {
    @Test(arguments: DurabilityMode.allCases)
    func concurrentAppendersAreAllDurableOnceInTheirOrder(mode: DurabilityMode) async throws {
        let dir = TemporaryDirectory("conc")
        defer { dir.remove() }
        let (log, _) = try await WriteAheadLog.open(
            directory: dir.path,
            options: WALOptions(durability: mode, segmentBytes: 16384))
        let tasks = 16, perTask = 60
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    for i in 0..<perTask {
                        // Sequence encodes (task, index) so order and identity can be checked after replay.
                        let record = CommitRecord(
                            sequence: UInt64(t * 1000 + i + 1),
                            writes: [KeyWrite(key: bytes("t\(t)"), value: bytes("\(i)"), version: UInt64(i))])
                        try await log.append(record)
                    }
                }
            }
            try await group.waitForAll()
        }
        let stats = log.statistics
        #expect(stats.appends == UInt64(tasks * perTask))
        #expect(stats.batches <= stats.appends)
        await log.close()
        let (again, recovered) = try await WriteAheadLog.open(directory: dir.path)
        await again.close()
        #expect(recovered.commits.count == tasks * perTask)
        #expect(Set(recovered.commits.map(\.sequence)).count == tasks * perTask)
        for t in 0..<tasks {
            let mine = recovered.commits.filter { $0.writes[0].key == bytes("t\(t)") }.map(\.sequence)
            #expect(mine == (0..<perTask).map { UInt64(t * 1000 + $0 + 1) })
        }
    }

    @Test func bankTransfersDuringCheckpointsKeepTheTotal() async throws {
        let dir = TemporaryDirectory("bank")
        defer { dir.remove() }
        let accounts = 20
        let kv = try await DurableKeyValueLog.open(
            directory: dir.path, options: WALOptions(segmentBytes: 8192),
            checkpointEveryWALBytes: 32768)
        try await kv.commit { _ in (0..<accounts).map { (bytes("acct\($0)"), Bank.encode(1000)) } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    var rng = SplitMix64(seed: UInt64(t))
                    for _ in 0..<150 {
                        let from = Int.random(in: 0..<accounts, using: &rng)
                        let to = (from + Int.random(in: 1..<accounts, using: &rng)) % accounts
                        try await kv.commit { map in Bank.transfer(map, from: from, to: to, amount: 7) }
                    }
                }
            }
            group.addTask {
                for _ in 0..<10 {
                    do { try await kv.checkpoint() } catch StorageError.checkpointInProgress {}
                    await Task.yield()
                }
            }
            try await group.waitForAll()
        }
        let expected = kv.snapshot()
        #expect(Bank.total(expected.map, accounts: accounts) == 1000 * accounts)
        #expect(kv.log.statistics.checkpoints >= 1)
        await kv.close()
        let again = try await DurableKeyValueLog.open(directory: dir.path)
        let got = again.snapshot()
        #expect(got.sequence == expected.sequence)
        #expect(got.map == expected.map)
        await again.close()
    }

    @Test func closeDuringAppendsLosesNoAcknowledgedRecord() async throws {
        let dir = TemporaryDirectory("close")
        defer { dir.remove() }
        let (log, _) = try await WriteAheadLog.open(directory: dir.path)
        let acked = Locked<Set<UInt64>>([])
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    for i in 0..<1000 {
                        let seq = UInt64(t * 10_000 + i + 1)
                        do {
                            try await log.append(CommitRecord(sequence: seq, writes: []))
                            acked.withLock { _ = $0.insert(seq) }
                        } catch {
                            #expect(error as? StorageError == .closed)
                            return
                        }
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(20))
                await log.close()
            }
        }
        let (again, recovered) = try await WriteAheadLog.open(directory: dir.path)
        await again.close()
        let found = Set(recovered.commits.map(\.sequence))
        #expect(acked.withLock { $0 }.isSubset(of: found))
    }
}

/// Bank transfer helpers shared by the tests (the crash child has its own copy in the CLI).
enum Bank {
    static func encode(_ amount: Int64) -> [UInt8] { withUnsafeBytes(of: amount.littleEndian) { Array($0) } }

    static func decode(_ bytes: [UInt8]?) -> Int64 {
        guard let bytes, bytes.count == 8 else { return 0 }
        return bytes.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
    }

    static func transfer(_ map: [[UInt8]: DurableKeyValueLog.Entry], from: Int, to: Int, amount: Int64)
        -> [([UInt8], [UInt8]?)]
    {
        let a = bytes("acct\(from)"), b = bytes("acct\(to)")
        return [(a, encode(decode(map[a]?.value) - amount)), (b, encode(decode(map[b]?.value) + amount))]
    }

    static func total(_ map: [[UInt8]: DurableKeyValueLog.Entry], accounts: Int) -> Int {
        (0..<accounts).reduce(0) { $0 + Int(decode(map[bytes("acct\($1)")]?.value)) }
    }
}
