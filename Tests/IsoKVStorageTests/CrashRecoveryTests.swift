import Foundation
import Testing
@testable import IsoKVStorage
import IsoKVTestSupport

/// The crash test: a child process (`isokv crash-child`) runs concurrent bank transfers in `.fsync` mode and
/// reports each acknowledged commit; we SIGKILL it at random moments, then check the directory.
///
/// After every kill: every acknowledged commit is present (each account's recovered version is at least the last
/// acknowledged one, with the acknowledged balance when equal), no transaction is partly visible (the bank
/// total is invariant, and each recovered transfer record changes exactly two accounts by opposite amounts),
/// and the directory passes `check`. `ISOKV_CRASH_CYCLES` sets the number of kills (default 50).
/// Not a `Concurrent`/`Stress` suite: the concurrency is in the child; this process only waits.
@Suite struct CrashRecoveryTests {
    static let accounts = 16
    static let initial: Int64 = 1000

    @Test func sigkillAtRandomMomentsLosesNoAcknowledgedCommit() async throws {
        let cycles = Int(ProcessInfo.processInfo.environment["ISOKV_CRASH_CYCLES"] ?? "") ?? 50
        _ = try IsokvExecutable.path()  // fail early with a clear message
        let dir = TemporaryDirectory("crash")
        defer { dir.remove() }
        // The harness blocks on pipes and waitpid: run it on a thread of its own, not a cooperative one.
        let summary: Result<Summary, HarnessFailure> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    returning: Result { () throws(HarnessFailure) in
                        try Self.run(cycles: cycles, directory: dir.path)
                    })
            }
            thread.start()
        }
        let s = try summary.get()
        #expect(s.cycles == cycles)
        #expect(s.acknowledged > 0)
        #expect(s.killedWithTornTail + s.killedCleanly == cycles)
        print(
            "crash test: \(s.cycles) SIGKILLs, \(s.acknowledged) acknowledged commits checked, last sequence \(s.lastSequence), \(s.killedWithTornTail) torn tails cut, \(s.checkpointsSeen) distinct checkpoints"
        )
    }

    struct Summary: Sendable {
        var cycles = 0
        var acknowledged = 0
        var lastSequence: UInt64 = 0
        var killedWithTornTail = 0
        var killedCleanly = 0
        var checkpointsSeen = 0
    }

    struct HarnessFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// The isokv executable next to the test bundle (SwiftPM builds it with the tests), or `ISOKV_BINARY`.
    /// Last acknowledged state of one account.
    struct Acked { var sequence: UInt64; var version: UInt64; var balance: Int64 }

    static func run(cycles: Int, directory: String) throws(HarnessFailure) -> Summary {
        var summary = Summary()
        var acked = [Int: Acked]()
        var maxAcked: UInt64 = 0
        var rng = SystemRandomNumberGenerator()
        var checkpoints = Set<UInt64>()
        for cycle in 0..<cycles {
            // Wait for READY (recovery done), then let the workload run a random while and kill it. Only whole
            // lines count: a line cut by the kill was never fully reported.
            let lines: [Substring]
            do {
                lines = try IsokvExecutable.runUntilReadyThenKill(
                    [
                        "crash-child", directory, "--accounts", "\(accounts)", "--writers", "8", "--initial-balance",
                        "\(initial)", "--segment-bytes", "8192", "--checkpoint-bytes", "32768"
                    ],
                    delayMicroseconds: UInt32.random(in: 1_000...60_000, using: &rng), cycle: cycle)
            } catch { throw HarnessFailure(description: error.description) }
            for line in lines {
                let f = line.split(separator: " ")
                if f.first == "INIT", f.count == 2, let s = UInt64(f[1]) {
                    for a in 0..<accounts where acked[a] == nil {
                        acked[a] = Acked(sequence: s, version: 1, balance: initial)
                    }
                    maxAcked = max(maxAcked, s)
                }
                guard f.first == "ACK", f.count == 8, let seq = UInt64(f[1]),
                    let from = Int(f[2]), let fromVersion = UInt64(f[3]), let fromBalance = Int64(f[4]),
                    let to = Int(f[5]), let toVersion = UInt64(f[6]), let toBalance = Int64(f[7])
                else { continue }
                summary.acknowledged += 1
                maxAcked = max(maxAcked, seq)
                for (a, v, b) in [(from, fromVersion, fromBalance), (to, toVersion, toBalance)]
                where (acked[a]?.version ?? 0) < v {
                    acked[a] = Acked(sequence: seq, version: v, balance: b)
                }
            }
            // Check the directory as the killed process left it (read-only).
            let state: RecoveredState
            do { state = try WriteAheadLog.check(directory: directory) } catch {
                throw HarnessFailure(description: "cycle \(cycle): check failed after SIGKILL: \(error)")
            }
            if state.truncatedTail != nil { summary.killedWithTornTail += 1 } else { summary.killedCleanly += 1 }
            checkpoints.insert(state.checkpointSequence)
            var map = [String: (version: UInt64, balance: Int64)]()
            for e in state.checkpointEntries {
                map[String(decoding: e.key, as: UTF8.self)] = (e.version, decode(e.value))
            }
            for record in state.commits {
                if record.writes.count == 2 {
                    let delta =
                        decode(record.writes[0].value) + decode(record.writes[1].value)
                        - (map[String(decoding: record.writes[0].key, as: UTF8.self)]?.balance ?? 0)
                        - (map[String(decoding: record.writes[1].key, as: UTF8.self)]?.balance ?? 0)
                    if delta != 0 {
                        throw HarnessFailure(
                            description: "cycle \(cycle): transfer \(record.sequence) changes the total by \(delta)")
                    }
                }
                for w in record.writes { map[String(decoding: w.key, as: UTF8.self)] = (w.version, decode(w.value)) }
            }
            if maxAcked > state.lastSequence {
                throw HarnessFailure(
                    description:
                        "cycle \(cycle): acknowledged sequence \(maxAcked) but recovery ends at \(state.lastSequence)")
            }
            let total = (0..<accounts).reduce(Int64(0)) { $0 + (map["acct\($1)"]?.balance ?? 0) }
            if total != Int64(accounts) * initial {
                throw HarnessFailure(description: "cycle \(cycle): bank total \(total) != \(Int64(accounts) * initial)")
            }
            for (a, ack) in acked {
                guard let got = map["acct\(a)"] else {
                    throw HarnessFailure(description: "cycle \(cycle): account \(a) lost")
                }
                if got.version < ack.version || (got.version == ack.version && got.balance != ack.balance) {
                    throw HarnessFailure(
                        description:
                            "cycle \(cycle): account \(a) recovered version \(got.version) balance \(got.balance), but commit \(ack.sequence) acknowledged version \(ack.version) balance \(ack.balance)"
                    )
                }
            }
            summary.cycles += 1
            summary.lastSequence = state.lastSequence
        }
        summary.checkpointsSeen = checkpoints.count
        return summary
    }

    static func decode(_ b: [UInt8]?) -> Int64 {
        guard let b, b.count == 8 else { return 0 }
        return b.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
    }
}
