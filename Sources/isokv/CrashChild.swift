import ArgumentParser
import Foundation
import IsoKV
import IsoKVStorage
#if canImport(Glibc)
    import Glibc
#endif

/// `isokv crash-child <dir>` (hidden): the victim of the crash test.
///
/// Opens the directory with the reference state machine in `.fsync` mode (or `--durability buffered`) (small segments, frequent checkpoints),
/// creates `accounts` accounts on first run, prints `READY <lastSequence>`, then runs `writers` concurrent
/// bank-transfer commits forever, printing one line per *acknowledged* commit:
/// `ACK <sequence> <from> <fromVersion> <fromBalance> <to> <toVersion> <toBalance>`.
/// Each line is one write(2) of less than PIPE_BUF bytes, so lines never interleave. The parent SIGKILLs it.
///
/// With `--engine`, the same workload runs through the real engine: `Database.open(path:)` in `.fsync` mode,
/// `.snapshot` transactions (read both accounts, write both, retry on `40001`/`40P01`, printing `RETRY <code>` for
/// each retry), background checkpoints by WAL size; a line is printed once `commit` has returned (acknowledged),
/// with the commit number as the sequence and as both accounts' new version (`CrashChild+Engine.swift`).
/// `ISOKV_FAILPOINT` makes it kill itself at an exact failpoint (`CrashChild+Failpoint.swift`).
///
/// It never outlives whoever reads its output: it exits when a line can no longer be written (the reader closed the
/// pipe) and when its parent process exits (it would be re-parented, and would keep the test runner's inherited
/// stderr open, so a runner that dies in a test would wait for it forever).
struct CrashChild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crash-child",
        abstract: "Crash-test victim: bank transfers in .fsync mode, acknowledged commits on stdout.",
        shouldDisplay: false
    )

    @Argument var directory: String
    @Option var accounts = 16
    @Option var writers = 8
    @Option var initialBalance: Int64 = 1000
    @Option var segmentBytes = 16384
    @Option var checkpointBytes: Int64 = 65536
    @Option(help: "fsync or buffered.") var durability = "fsync"
    @Flag(help: "Run the workload through Database.open (the MVCC engine) instead of the reference state machine.")
    var engine = false

    func run() async throws {
        exitWhenOrphaned()
        let crash = CrashSwitch(try CrashFailpoint.fromEnvironment())
        if engine { return try await runEngine(crash) }
        let kv = try await DurableKeyValueLog.open(
            directory: directory,
            options: WALOptions(durability: try walDurability(), segmentBytes: segmentBytes, faults: crash.hook),
            checkpointEveryWALBytes: checkpointBytes)
        crash.markOpen()
        let accounts = self.accounts, initial = self.initialBalance
        if kv.snapshot().sequence == 0 {
            let seq = try await kv.commit { _ in (0..<accounts).map { (CrashChild.key($0), CrashChild.encode(initial)) }
            }
            emit("INIT \(seq)\n")
        }
        emit("READY \(kv.snapshot().sequence)\n")
        try await Self.runTransfers(writers: writers, accounts: accounts) { from, to, amount in
            var line = ""
            let seq = try await kv.commit { map in
                let a = CrashChild.key(from), b = CrashChild.key(to)
                let fa = map[a], fb = map[b]
                let na = CrashChild.decode(fa?.value) - amount, nb = CrashChild.decode(fb?.value) + amount
                line = "\(from) \((fa?.version ?? 0) + 1) \(na) \(to) \((fb?.version ?? 0) + 1) \(nb)"
                return [(a, CrashChild.encode(na)), (b, CrashChild.encode(nb))]
            }
            return "\(seq) \(line)"
        }
    }

    /// `writers` tasks doing random transfers between `accounts` accounts forever (until the parent kills the
    /// process), each printing `ACK <line>` once `transfer` returns, i.e. once the commit is acknowledged.
    static func runTransfers(
        writers: Int, accounts: Int,
        _ transfer: @escaping @Sendable (Int, Int, Int64) async throws -> String
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<writers {
                group.addTask {
                    var rng = SystemRandomNumberGenerator()
                    while true {
                        let from = Int.random(in: 0..<accounts, using: &rng)
                        let to = (from + Int.random(in: 1..<accounts, using: &rng)) % accounts
                        let amount = Int64.random(in: 1...50, using: &rng)
                        emit("ACK \(try await transfer(from, to, amount))\n")
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    func walDurability() throws -> DurabilityMode {
        switch durability {
        case "fsync": return .fsync
        case "buffered": return .buffered
        default: throw ValidationError("--durability must be fsync or buffered, not \(durability)")
        }
    }

    static func key(_ i: Int) -> [UInt8] { Array("acct\(i)".utf8) }
    static func encode(_ v: Int64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func decode(_ b: [UInt8]?) -> Int64 {
        guard let b, b.count == 8 else { return 0 }
        return b.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
    }
}

/// One write(2) of a whole line to stdout (atomic on a pipe below PIPE_BUF). When nobody reads any more (`EPIPE`,
/// with `SIGPIPE` ignored), the child exits: every later line would be lost too.
func emit(_ line: String) {
    let bytes = Array(line.utf8)
    let written = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress!, $0.count) }
    if written < 0 && errno == EPIPE { _exit(0) }
}

/// Starts a thread of the process's own that checks `getppid()` four times a second and ends the process once it
/// changed: the parent that started the child exited and the child was re-parented (to init or a subreaper).
/// A parent-death signal (`PR_SET_PDEATHSIG`) is not used: it fires when the parent's *thread* that spawned the
/// child exits, and the test runner spawns from worker threads that the runtime retires while the parent lives on.
func exitWhenOrphaned() {
    let parent = getppid()
    let thread = Thread {
        while getppid() == parent { usleep(250_000) }
        _exit(0)
    }
    thread.name = "parent-watch"
    thread.start()
}
