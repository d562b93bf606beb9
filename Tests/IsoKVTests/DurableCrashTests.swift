import Foundation
import IsoKV
import IsoKVStorage
import Testing
import IsoKVTestSupport

/// The crash test of issue 5 on the real engine: a child process (`isokv crash-child --engine`) runs 8 concurrent
/// bank-transfer transactions through `Database.open(path:)` in `.fsync` mode (small segments, background
/// checkpoints) and reports each acknowledged commit; we SIGKILL it at a random moment, reopen the directory with
/// `Database.open`, and check:
/// - every acknowledged commit is present: each account's recovered version is at least the last acknowledged
///   one, with the acknowledged balance when equal, and recovery ends at or after the last acknowledged commit;
/// - no transaction is partly visible: the bank total is invariant, and a transfer that survived unacknowledged
///   shows its commit number on both of its accounts or on neither (checked against the WAL records);
/// - commit numbers stay monotonic across restarts: the next run's commits are above the recovered last commit.
/// `ISOKV_CRASH_CYCLES` sets the number of kills (default 50). Not a `Concurrent`/`Stress` suite: the
/// concurrency is in the child; this process only waits for it (on a thread of its own) and reopens.
@Suite struct DurableCrashTests {
    static let accounts = 16
    static let initial: Int64 = 1000

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Last acknowledged state of one account.
    struct Acked { var sequence: UInt64; var balance: Int64 }

    @Test func sigkillDuringTransfersThroughTheEngineLosesNoAcknowledgedCommit() async throws {
        let cycles = Int(ProcessInfo.processInfo.environment["ISOKV_CRASH_CYCLES"] ?? "") ?? 50
        _ = try IsokvExecutable.path()  // fail early with a clear message
        let dir = TemporaryDirectory("engine-crash")
        defer { dir.remove() }
        var acked = [Int: Acked]()
        var maxAcked: UInt64 = 0
        var recoveredLast: UInt64 = 0
        var totalAcked = 0
        var checkpoints = Set<UInt64>()
        for cycle in 0..<cycles {
            let delay = UInt32.random(in: 2_000...80_000)
            // Spawning, reading the pipe and waitpid block: run them on a thread of our own.
            let output: Result<[Substring], IsokvExecutable.Failure> = await withCheckedContinuation { continuation in
                Thread {
                    continuation.resume(
                        returning: Result { () throws(IsokvExecutable.Failure) in
                            try IsokvExecutable.runUntilReadyThenKill(
                                [
                                    "crash-child", dir.path, "--engine", "--accounts", "\(Self.accounts)", "--writers",
                                    "8",
                                    "--initial-balance", "\(Self.initial)", "--segment-bytes", "8192",
                                    "--checkpoint-bytes", "32768"
                                ],
                                delayMicroseconds: delay, cycle: cycle)
                        })
                }.start()
            }
            for line in try output.get() {
                let f = line.split(separator: " ")
                if f.first == "INIT", f.count == 2, let s = UInt64(f[1]) {
                    #expect(s > recoveredLast)
                    for a in 0..<Self.accounts where acked[a] == nil {
                        acked[a] = Acked(sequence: s, balance: Self.initial)
                    }
                    maxAcked = max(maxAcked, s)
                }
                guard f.first == "ACK", f.count == 8, let seq = UInt64(f[1]), let from = Int(f[2]),
                    let fromBalance = Int64(f[4]), let to = Int(f[5]), let toBalance = Int64(f[7])
                else { continue }
                totalAcked += 1
                if seq <= recoveredLast {
                    throw Failure(
                        description: "cycle \(cycle): commit number \(seq) reused (recovered last was \(recoveredLast))"
                    )
                }
                maxAcked = max(maxAcked, seq)
                for (a, b) in [(from, fromBalance), (to, toBalance)] where (acked[a]?.sequence ?? 0) < seq {
                    acked[a] = Acked(sequence: seq, balance: b)
                }
            }
            // The WAL as the killed process left it (read-only), to know which accounts each surviving commit wrote.
            let wal = try await Task.detached { try WriteAheadLog.check(directory: dir.path) }.value
            checkpoints.insert(wal.checkpointSequence)
            var writers: [UInt64: [String]] = [:]
            for record in wal.commits {
                writers[record.sequence] = record.writes.map { String(decoding: $0.key, as: UTF8.self) }
            }

            let db = try await Database.open(path: dir.path, options: Database.OpenOptions(checkpointWALBytes: nil))
            let last = db.statistics().lastCommit
            if last < maxAcked {
                throw Failure(
                    description: "cycle \(cycle): acknowledged commit \(maxAcked) but recovery ends at \(last)")
            }
            var total: Int64 = 0
            var state: [String: VersionedValue] = [:]
            // The same invariant through a snapshot transaction (what an application would read).
            let snapshotTotal = try await db.transaction(.snapshot, readOnly: true) { tx in
                var sum: Int64 = 0
                for a in 0..<Self.accounts { sum += try await tx.get(Bytes("acct\(a)"))?.int64 ?? 0 }
                return sum
            }
            for a in 0..<Self.accounts {
                guard let v = try await db.get(Bytes("acct\(a)")), let balance = v.value.int64 else {
                    if acked[a] != nil { throw Failure(description: "cycle \(cycle): account \(a) lost") }
                    continue
                }
                state["acct\(a)"] = v
                total += balance
                if let ack = acked[a], v.version < ack.sequence || (v.version == ack.sequence && balance != ack.balance)
                {
                    throw Failure(
                        description:
                            "cycle \(cycle): account \(a) recovered version \(v.version) balance \(balance), but commit \(ack.sequence) acknowledged balance \(ack.balance)"
                    )
                }
            }
            if !state.isEmpty && (total != Int64(Self.accounts) * Self.initial || snapshotTotal != total) {
                throw Failure(
                    description: "cycle \(cycle): bank total \(total) != \(Int64(Self.accounts) * Self.initial)")
            }
            // A transfer is all or nothing: if one of its accounts shows its commit number, the other shows that
            // number or a later one (a later transfer may have overwritten it), never an older one.
            for (key, v) in state {
                guard let keys = writers[v.version], keys.count == 2 else { continue }
                let other = keys[0] == key ? keys[1] : keys[0]
                if (state[other]?.version ?? 0) < v.version {
                    throw Failure(
                        description: "cycle \(cycle): commit \(v.version) visible on \(key) but not on \(other)")
                }
            }
            recoveredLast = last
            await db.close()
        }
        #expect(totalAcked > cycles)
        print(
            "engine crash test: \(cycles) SIGKILLs, \(totalAcked) acknowledged transfers checked, last commit \(recoveredLast), \(checkpoints.count) distinct checkpoints"
        )
    }
}
