import Foundation
@_spi(Testing) import IsoKV
import IsoKVStorage
import IsoKVTestSupport
import Testing

/// The crash matrix: the engine's crash child (`isokv crash-child --engine`: concurrent bank transfers that retry
/// on `40001` and `40P01`) is killed with SIGKILL at exact points chosen by failpoints (`ISOKV_FAILPOINT`, the
/// child kills itself there), in `.fsync` and `.buffered` mode, one data directory per mode:
///
/// | cell            | where the child dies                                                   | asserted after the kill      |
/// |-----------------|------------------------------------------------------------------------|------------------------------|
/// | `random`        | parent's SIGKILL at a seeded moment after `READY`                      | —                            |
/// | `tornWrite`     | mid-write of the n-th WAL batch (part of it reaches the file)          | a torn tail exists           |
/// | `recoveryCut`   | recovery, just before it cuts that torn tail (no `READY`)              | the same torn tail remains   |
/// | `recoverySync`  | recovery, at the fsync after the cut (no `READY`)                      | no torn tail                 |
/// | `rotation`      | segment rotation: before it, or mid-write of the new segment's header  | torn header when mid-write   |
/// | `checkpoint…`   | writing (2nd checkpoint), fsyncing (`.fsync`) or renaming a checkpoint | its temp file exists         |
///
/// After every kill, on the directory as the child left it: every acknowledged commit is present (each account's
/// version ≥ the last acknowledged one, same balance when equal; recovery ends at or after the last acknowledged
/// commit); the WAL holds a prefix (sequences increasing after the checkpoint, the record of every checkpoint entry
/// copied after the checkpoint's sequence, every transfer conserving money once the fuzzy copy has settled);
/// and the state `Database.open` recovers (on a copy, so that the next child still meets a torn tail) equals an
/// independent replay of that prefix by the test — every key, value and version, and the last commit number.
/// Over the run: torn tails and at least two distinct checkpoints happened, and both retry codes were seen.
///
/// One round of 10 kills per mode by default (a few seconds); `ISOKV_CRASH_CYCLES=200` runs 20 rounds per mode.
/// Seeded (`ISOKV_SEED`). Not a `Concurrent`/`Stress` suite: the concurrency is in the child.
@Suite struct CrashMatrixTests {
    static let accounts = 8
    static let initial: Int64 = 1000

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// One kill of the matrix.
    struct Cell: CustomStringConvertible {
        var name: String
        /// `ISOKV_FAILPOINT` of the child, nil for a kill by the parent at `delay` after `READY`.
        var failpoint: String?
        var delay: UInt32 = 0
        /// Whether the child reaches `READY` before dying (false: killed during recovery).
        var ready = true
        /// Whether `check` must (true) or must not (false) find a torn tail after the kill; nil: either.
        var tornTail: Bool?
        /// Whether the kill must leave a checkpoint temp file (killed mid-checkpoint).
        var midCheckpoint = false
        var description: String { "\(name) [\(failpoint ?? "parent kill after \(delay) µs")]" }
    }

    static func round(_ mode: Database.Durability, rng: inout SplitMix64) -> [Cell] {
        let rotationHit = Int.random(in: 1...4, using: &rng)
        var cells = [
            Cell(name: "random", delay: UInt32.random(in: 20_000...150_000, using: &rng)),
            Cell(
                name: "tornWrite",
                failpoint:
                    "walWrite@running:\(Int.random(in: 5...60, using: &rng)):\(Int.random(in: 1...40, using: &rng))",
                tornTail: true),
            Cell(name: "recoveryCut", failpoint: "tailTruncate@recovery:1", ready: false, tornTail: true),
            Cell(name: "recoverySync", failpoint: "walSync@recovery:1", ready: false, tornTail: false),
            // Hits alternate: rotate()'s own point (before anything), then the new segment's header write.
            Cell(
                name: "rotation",
                failpoint: "segmentRotate@running:\(rotationHit):\(Int.random(in: 1...31, using: &rng))",
                tornTail: rotationHit % 2 == 0),
            Cell(name: "checkpointWrite", failpoint: "checkpointWrite@running:2", midCheckpoint: true),
            Cell(
                name: "tornWrite",
                failpoint:
                    "walWrite@running:\(Int.random(in: 5...60, using: &rng)):\(Int.random(in: 1...40, using: &rng))",
                tornTail: true),
            Cell(
                name: "rotation", failpoint: "segmentRotate@running:2:\(Int.random(in: 1...31, using: &rng))",
                tornTail: true),
            // `.buffered` does not fsync the checkpoint: kill at its rename instead.
            mode == .fsync
                ? Cell(name: "checkpointSync", failpoint: "checkpointSync@running:1", midCheckpoint: true)
                : Cell(name: "checkpointRename", failpoint: "checkpointRename@running:1", midCheckpoint: true),
            Cell(name: "random", delay: UInt32.random(in: 20_000...150_000, using: &rng))
        ]
        if Bool.random(using: &rng) { cells.swapAt(5, 8) }
        return cells
    }

    struct Acked { var sequence: UInt64; var balance: Int64 }

    struct Tally {
        var kills = 0
        var acknowledged = 0
        var tornTails = 0
        var killedInRecovery = 0
        var checkpoints = Set<UInt64>()
        var retries: [String: Int] = [:]
    }

    @Test(arguments: [Database.Durability.fsync, .buffered])
    func sigkillAtEachFailpointLosesNoAcknowledgedCommit(_ mode: Database.Durability) async throws {
        let cycles = Int(ProcessInfo.processInfo.environment["ISOKV_CRASH_CYCLES"] ?? "") ?? 0
        let rounds = max(1, cycles / 10)
        _ = try IsokvExecutable.path()
        let dir = TemporaryDirectory("crash-matrix")
        defer { dir.remove() }
        var rng = SplitMix64(seed: testSeed("CrashMatrixTests \(mode)"))
        var tally = Tally()
        var acked = [Int: Acked]()
        var maxAcked: UInt64 = 0
        var lastTail: TailTruncation?
        let arguments = [
            "crash-child", dir.path, "--engine", "--durability", mode == .fsync ? "fsync" : "buffered",
            "--accounts", "\(Self.accounts)", "--writers", "8", "--initial-balance", "\(Self.initial)",
            "--segment-bytes", "8192", "--checkpoint-bytes", "24576"
        ]
        for roundIndex in 0..<rounds {
            for cell in Self.round(mode, rng: &rng) {
                let context = "\(mode) round \(roundIndex) kill \(tally.kills) \(cell)"
                let run = try await onOwnThread { () throws(IsokvExecutable.Failure) in
                    try IsokvExecutable.runChild(
                        arguments, environment: cell.failpoint.map { ["ISOKV_FAILPOINT": $0] } ?? [:],
                        killAfterReadyMicroseconds: cell.failpoint == nil ? cell.delay : nil)
                }
                tally.kills += 1
                guard run.killedBySignal else {
                    throw Failure(description: "\(context): child exited by itself: \(run.lines.suffix(5))")
                }
                let fired = run.lines.last { $0.hasPrefix("FAILPOINT ") }
                if let point = cell.failpoint?.prefix(while: { $0 != "@" }) {
                    guard let fired, fired.split(separator: " ").dropFirst().first == point else {
                        throw Failure(description: "\(context): the child did not die at its failpoint")
                    }
                } else if let fired {
                    throw Failure(description: "\(context): unexpected \(fired)")
                }
                if run.sawReady != cell.ready {
                    throw Failure(description: "\(context): READY \(run.sawReady ? "printed" : "missing")")
                }
                if !cell.ready { tally.killedInRecovery += 1 }

                // What the child acknowledged.
                for line in run.lines {
                    let f = line.split(separator: " ")
                    if f.first == "RETRY", f.count == 2 { tally.retries[String(f[1]), default: 0] += 1 }
                    if f.first == "INIT", f.count == 2, let s = UInt64(f[1]) {
                        for a in 0..<Self.accounts where acked[a] == nil {
                            acked[a] = Acked(sequence: s, balance: Self.initial)
                        }
                        maxAcked = max(maxAcked, s)
                    }
                    guard f.first == "ACK", f.count == 8, let seq = UInt64(f[1]), let from = Int(f[2]),
                        let fromBalance = Int64(f[4]), let to = Int(f[5]), let toBalance = Int64(f[7])
                    else { continue }
                    tally.acknowledged += 1
                    maxAcked = max(maxAcked, seq)
                    for (a, b) in [(from, fromBalance), (to, toBalance)] where (acked[a]?.sequence ?? 0) < seq {
                        acked[a] = Acked(sequence: seq, balance: b)
                    }
                }

                // The directory as the child left it (read-only), and the test's own replay of its WAL prefix.
                let wal = try await Task.detached { try WriteAheadLog.check(directory: dir.path) }.value
                if wal.truncatedTail != nil { tally.tornTails += 1 }
                if let expected = cell.tornTail, (wal.truncatedTail != nil) != expected {
                    throw Failure(
                        description:
                            "\(context): torn tail \(String(describing: wal.truncatedTail)), expected \(expected)")
                }
                if cell.name == "recoveryCut" && wal.truncatedTail != lastTail {
                    throw Failure(
                        description:
                            "\(context): the torn tail changed before it was cut: \(String(describing: lastTail)) → \(String(describing: wal.truncatedTail))"
                    )
                }
                lastTail = wal.truncatedTail
                let hasTemp = FileManager.default.fileExists(atPath: dir.file(DataDirectory.checkpointTempName))
                if cell.midCheckpoint && !hasTemp {
                    throw Failure(description: "\(context): no checkpoint temp file: not killed mid-checkpoint")
                }
                if wal.checkpointSequence > 0 { tally.checkpoints.insert(wal.checkpointSequence) }
                let replay = try Self.replay(wal, context: context)

                // Every acknowledged commit is in the prefix.
                if maxAcked > wal.lastSequence {
                    throw Failure(
                        description: "\(context): acknowledged commit \(maxAcked), WAL ends at \(wal.lastSequence)")
                }
                for (a, ack) in acked {
                    guard let got = replay[Bytes("acct\(a)")], let balance = got.value.int64 else {
                        throw Failure(description: "\(context): account \(a) lost")
                    }
                    if got.version < ack.sequence || (got.version == ack.sequence && balance != ack.balance) {
                        throw Failure(
                            description:
                                "\(context): account \(a) has version \(got.version) balance \(balance), commit \(ack.sequence) acknowledged balance \(ack.balance)"
                        )
                    }
                }

                // What the engine recovers equals the replay (on a copy: the original keeps its torn tail).
                let copy = TemporaryDirectory("crash-matrix-copy")
                defer { copy.remove() }
                for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
                    try FileManager.default.copyItem(atPath: dir.file(name), toPath: copy.file(name))
                }
                let db = try await Database.open(path: copy.path, options: durableOptions(mode))
                let recovered = try await contents(db, (0..<Self.accounts).map { Bytes("acct\($0)") })
                let last = db.statistics().lastCommit
                await db.close()
                if recovered != replay || last != wal.lastSequence {
                    throw Failure(
                        description:
                            "\(context): recovered \(recovered) (last commit \(last)) != replay \(replay) (last \(wal.lastSequence))"
                    )
                }
            }
        }
        let expectedTornTails = rounds * 4  // tornWrite ×2, recoveryCut, rotation mid-header
        #expect(tally.tornTails >= expectedTornTails, "torn tails: \(tally.tornTails)")
        #expect(tally.killedInRecovery == rounds * 2)
        #expect(tally.checkpoints.count >= 2, "distinct checkpoints: \(tally.checkpoints.sorted())")
        #expect(tally.retries["40001", default: 0] > 0, "retries: \(tally.retries)")
        #expect(tally.retries["40P01", default: 0] > 0, "retries: \(tally.retries)")
        #expect(tally.acknowledged > 0)
        print(
            "crash matrix (\(mode)): \(tally.kills) SIGKILLs (\(tally.killedInRecovery) during recovery), \(tally.acknowledged) acknowledged transfers checked, \(tally.tornTails) torn tails, \(tally.checkpoints.count) distinct checkpoints, retries \(tally.retries.sorted { $0.key < $1.key })"
        )
    }

    /// The committed state the WAL prefix describes, computed by the test: the checkpoint's entries, then every
    /// commit record in order (a tombstone removes the key). Checks on the way that the records form a prefix of
    /// the commit history (sequences increasing, above the checkpoint) and that every transfer conserves money.
    ///
    /// The checkpoint is fuzzy (each account copied at its newest version when the checkpoint reached it): the
    /// replayed state is a real moment of the history only once every record up to the newest entry's version is
    /// applied — from there on (`settled`) each transfer is checked against the state before it; before, a
    /// transfer may meet an account already copied at a later version.
    static func replay(_ wal: RecoveredState, context: String) throws -> [Bytes: VersionedValue] {
        var state: [Bytes: VersionedValue] = [:]
        for e in wal.checkpointEntries {
            if let v = e.value { state[Bytes(e.key)] = VersionedValue(value: Bytes(v), version: e.version) }
        }
        let settled = wal.checkpointEntries.reduce(wal.checkpointSequence) { max($0, $1.version) }
        // An entry copied from a commit after the checkpoint's sequence survives only with that commit's record.
        let sequences = Set(wal.commits.map(\.sequence))
        for e in wal.checkpointEntries where e.version > wal.checkpointSequence && !sequences.contains(e.version) {
            throw Failure(description: "\(context): checkpoint entry at version \(e.version) without its record")
        }
        var previous = wal.checkpointSequence
        for record in wal.commits {
            guard record.sequence > previous else {
                throw Failure(description: "\(context): WAL record \(record.sequence) after \(previous)")
            }
            previous = record.sequence
            if record.writes.count == 2 && record.sequence > settled {
                let before = record.writes.reduce(Int64(0)) { $0 + (state[Bytes($1.key)]?.value.int64 ?? 0) }
                let after = record.writes.reduce(Int64(0)) { $0 + (Bytes($1.value ?? []).int64 ?? 0) }
                if before != after {
                    throw Failure(description: "\(context): transfer \(record.sequence) changes the total")
                }
            }
            for w in record.writes {
                state[Bytes(w.key)] = w.value.map { VersionedValue(value: Bytes($0), version: w.version) }
            }
        }
        if !state.isEmpty {
            let total = state.values.reduce(Int64(0)) { $0 + ($1.value.int64 ?? 0) }
            if total != Int64(accounts) * initial {
                throw Failure(description: "\(context): replayed bank total \(total)")
            }
        }
        return state
    }
}

/// Runs blocking work (pipes, `waitpid`) on a thread of its own, never on a cooperative one.
func onOwnThread<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: Result { () throws(E) in try body() }) }.start()
    }
    return try result.get()
}
