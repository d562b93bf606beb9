import ArgumentParser
import Foundation
import IsoKV
import IsoKVStorage
import IsoKVWorkloads

/// `isokv bench memory`: how much resident memory the engine needs per byte of data, after a load and during a
/// soak of random updates (old versions must be collected, so the figure must stay flat).
///
/// For each mode (in memory, durable): load `keys` keys (`Dataset.key(i)`, 14 bytes) with values of `value-size`
/// bytes in transactions of 1 000 puts, then `updates-factor × keys` updates of uniformly random keys (each a
/// `db.put`, its own transaction, with a fresh value) from `tasks` concurrent tasks. Every key and value is built
/// for the engine (nothing is shared with the benchmark), so the resident-memory growth is what the engine holds.
/// With `--mode both` each mode runs in a child process (this executable, started again with `--mode <mode>`).
/// Resident memory is `VmRSS` of `/proc/self/status`, measured before the load (after the allocator has returned
/// its free memory: `malloc_trim`, or jemalloc's purge), after it,
/// at every tenth of the soak and after it; the figures are the growth over the pre-load value divided by the raw
/// data (keys × (key bytes + value bytes)).
struct BenchMemory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Resident memory of the engine as a multiple of the raw data, after a load and a random-update soak.",
        discussion: """
            Resident memory is VmRSS from /proc/self/status; each figure is (VmRSS - VmRSS before the load) / raw \
            data, raw data = keys x (14-byte key + value bytes). The durable mode opens a fresh directory under the \
            temporary directory (removed afterwards) with the chosen durability and the default background \
            checkpoint threshold; its figure includes the log's buffers, not the page cache of its files. With \
            --mode both each mode runs in a child isokv process of its own, so memory the allocator kept from one \
            mode cannot hide the next one's growth.
            """
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable, Sendable {
        case inMemory = "in-memory", durable, both
    }

    @Option(help: "Keys loaded.") var keys: Int = 1_000_000
    @Option(help: "Value size in bytes.") var valueSize: Int = 100
    @Option(help: "Soak length, in updates per loaded key.") var updatesFactor: Int = 3
    @Option(help: "Concurrent updating tasks in the soak.") var tasks: Int = 2
    @Option(help: "in-memory | durable | both") var mode: Mode = .both
    @Option(help: "Durability of the durable mode: fsync | buffered | unsafeNoSync") var durability: DurabilityMode =
        .unsafeNoSync
    @Option(help: "table | json") var format: OutputFormat = .table

    func validate() throws {
        guard keys >= 1, keys <= 50_000_000 else { throw ValidationError("--keys must be in 1...50000000") }
        guard valueSize >= 0, valueSize <= 1 << 20 else { throw ValidationError("--value-size must be in 0...1048576") }
        guard updatesFactor >= 0, updatesFactor <= 100 else {
            throw ValidationError("--updates-factor must be in 0...100")
        }
        guard tasks >= 1, tasks <= 1024 else { throw ValidationError("--tasks must be in 1...1024") }
        guard Self.residentBytes() != nil else {
            throw ValidationError("VmRSS is not readable from /proc/self/status on this system")
        }
    }

    func run() async throws {
        let rawBytes = Double(keys) * Double(Dataset.key(0).count + valueSize)
        var report = Report<MemoryBenchRecord>(
            title: "isokv bench memory",
            parameters: [
                ("keys", "\(keys)"), ("key size", "\(Dataset.key(0).count)"), ("value size", "\(valueSize)"),
                ("raw data", String(format: "%.1f MB", rawBytes / 1e6)),
                ("soak updates", "\(updatesFactor * keys) (uniform keys, one db.put each)"), ("tasks", "\(tasks)"),
                ("durable mode", durability.rawValue), ("allocator", Allocator.setting)
            ],
            columns: [
                "mode", "load s", "after load", "x raw", "soak max", "after soak", "x raw", "soak / load"
            ])
        let modes: [Mode] = mode == .both ? [.inMemory, .durable] : [mode]
        for m in modes {
            // Both modes: each in a process of its own, so that memory the allocator kept after one mode (jemalloc
            // keeps purged pages mapped, and `MADV_FREE` pages still count as resident) cannot hide the next
            // mode's growth.
            let r = mode == .both ? try await measureInChild(m) : try await measure(m, rawBytes: rawBytes)
            report.add(
                [
                    m.rawValue, String(format: "%.1f", r.loadSeconds), Self.megabytes(r.afterLoadBytes),
                    Figure.ratio(r.afterLoadRatio), Self.megabytes(r.soakMaxBytes), Self.megabytes(r.afterSoakBytes),
                    Figure.ratio(r.afterSoakRatio), Figure.ratio(r.afterSoakBytes / Swift.max(r.afterLoadBytes, 1))
                ], r)
        }
        report.notes.append(
            "Figures are VmRSS growth over the value before the load; x raw = growth / raw data. soak max: the "
                + "largest of the samples taken at every tenth of the soak.")
        print(try report.render(format))
    }

    /// Runs `isokv bench memory --mode <mode>` with this run's options as a child process and returns its row.
    func measureInChild(_ mode: Mode) async throws -> MemoryBenchRecord {
        struct Output: Decodable { var results: [MemoryBenchRecord] }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("isokv-bench-memory-\(ProcessInfo.processInfo.processIdentifier)-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let out = directory + "/out", err = directory + "/err"
        let arguments = [
            "bench", "memory", "--mode", mode.rawValue, "--keys", "\(keys)", "--value-size", "\(valueSize)",
            "--updates-factor", "\(updatesFactor)", "--tasks", "\(tasks)", "--durability", durability.rawValue,
            "--format", "json"
        ]
        let process = try ChildProcesses.spawn(
            try BenchTools.ownExecutable(), arguments, stdout: out, stderr: err)
        while process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        guard process.terminationStatus == 0,
            let data = FileManager.default.contents(atPath: out),
            let row = try? JSONDecoder().decode(Output.self, from: data).results.first
        else {
            throw BenchMemoryError(
                "the \(mode.rawValue) measurement (a child isokv process) failed with status "
                    + "\(process.terminationStatus): \(stderr.suffix(2000))")
        }
        return row
    }

    func measure(_ mode: Mode, rawBytes: Double) async throws -> MemoryBenchRecord {
        Self.trim()
        let before = Double(Self.residentBytes() ?? 0)
        var directory: String?
        let db: Database
        if mode == .durable {
            let path = FileManager.default.temporaryDirectory
                .appendingPathComponent("isokv-bench-memory-\(ProcessInfo.processInfo.processIdentifier)-\(UUID())")
                .path
            directory = path
            db = try await Database.open(path: path, options: Database.OpenOptions(durability: durability))
        } else {
            db = Database.inMemory()
        }
        defer { if let directory { try? FileManager.default.removeItem(atPath: directory) } }

        let valueSize = self.valueSize
        let start = ContinuousClock.now
        var next = 0
        while next < keys {
            let end = Swift.min(next + 1000, keys)
            let range = next..<end
            try await db.transaction(.readCommitted) { tx in
                for i in range { try await tx.put(Dataset.key(i), Self.value(valueSize, stamp: UInt64(i))) }
            }
            next = end
        }
        let loadSeconds = (ContinuousClock.now - start).seconds
        let afterLoad = Double(Self.residentBytes() ?? 0) - before

        // The soak: ten rounds, a sample after each.
        let total = updatesFactor * keys
        var soakMax = afterLoad
        let keys = self.keys
        let tasks = self.tasks
        for round in 0..<10 {
            let count = total / 10 + (round < total % 10 ? 1 : 0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for t in 0..<tasks {
                    let share = count / tasks + (t < count % tasks ? 1 : 0)
                    group.addTask {
                        var rng = SplitMix64(seed: UInt64(round * 1024 + t) &+ 0x9E37_79B9)
                        for _ in 0..<share {
                            let i = Int(rng.next() % UInt64(keys))
                            try await db.put(Dataset.key(i), Self.value(valueSize, stamp: rng.next()))
                        }
                    }
                }
                try await group.waitForAll()
            }
            soakMax = Swift.max(soakMax, Double(Self.residentBytes() ?? 0) - before)
        }
        let afterSoak = Double(Self.residentBytes() ?? 0) - before
        if mode == .durable { await db.close() }
        return MemoryBenchRecord(
            mode: mode.rawValue, keys: keys, valueSize: valueSize, rawBytes: rawBytes, loadSeconds: loadSeconds,
            afterLoadBytes: afterLoad, afterLoadRatio: afterLoad / rawBytes, soakUpdates: total,
            soakMaxBytes: soakMax, afterSoakBytes: afterSoak, afterSoakRatio: afterSoak / rawBytes)
    }

    /// A fresh value of `size` bytes whose first bytes are `stamp` (so no two puts share a buffer).
    static func value(_ size: Int, stamp: UInt64) -> Bytes {
        var bytes = [UInt8](repeating: UInt8(ascii: "v"), count: size)
        var s = stamp
        for i in 0..<Swift.min(8, size) {
            bytes[i] = UInt8(truncatingIfNeeded: s)
            s >>= 8
        }
        return Bytes(bytes)
    }

    /// VmRSS of this process in bytes, from /proc/self/status; nil where that file is missing.
    static func residentBytes() -> Int? {
        #if os(Linux)
            guard let status = Allocator.procFile("/proc/self/status") else { return nil }
        #else
            let status = ""
        #endif
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kb = Int(fields[1]) else { return nil }
            return kb * 1024
        }
        return nil
    }

    /// Returns freed heap memory to the system, so that one mode's garbage does not count in the next.
    static func trim() { Allocator.releaseFreeMemory() }

    static func megabytes(_ bytes: Double) -> String { String(format: "%.0f MB", bytes / 1e6) }
}

extension Duration {
    fileprivate var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

/// A measurement that could not be made (a child process failed).
struct BenchMemoryError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One row of the JSON output (decoded too: `--mode both` reads each mode's row from a child process).
struct MemoryBenchRecord: Codable {
    var mode: String
    var keys: Int
    var valueSize: Int
    var rawBytes: Double
    var loadSeconds: Double
    /// VmRSS growth over the value before the load, in bytes.
    var afterLoadBytes: Double
    var afterLoadRatio: Double
    var soakUpdates: Int
    var soakMaxBytes: Double
    var afterSoakBytes: Double
    var afterSoakRatio: Double
}
