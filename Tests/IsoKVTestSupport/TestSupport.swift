import Foundation
import IsoKVWorkloads
import Synchronization

// Helpers shared by the test targets (not shipped: only test targets depend on this module). It will also carry
// the store conformance suite's fixtures when the PostgreSQL backend and the HTTP client arrive.

/// The project's one seedable generator (`IsoKVWorkloads.SplitMix64`), under the name the tests have always used,
/// so that every randomized test replays exactly from its seed.
///
/// ```swift
/// var rng = SplitMix64(seed: 42)
/// let n = Int.random(in: 0..<10, using: &rng)
/// ```
public typealias SplitMix64 = IsoKVWorkloads.SplitMix64

/// A fresh empty directory under /tmp, removed by `remove()`.
///
/// ```swift
/// let dir = TemporaryDirectory("wal")
/// defer { dir.remove() }
/// let db = try await Database.open(path: dir.path)
/// ```
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ label: String = "test") {
        var template = Array("/tmp/isokv-\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    public func file(_ name: String) -> String { path + "/" + name }

    /// WAL segment file names, sorted.
    public func segments() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix("wal-") }.sorted()
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Reads a file, lets `body` change its bytes, writes it back.
public func rewriteFile(_ path: String, _ body: (inout [UInt8]) -> Void) throws {
    var data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    body(&data)
    try Data(data).write(to: URL(fileURLWithPath: path))
}

/// The size of a file in bytes, or -1 if it cannot be read.
public func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
}

/// The `isokv` executable, run as a user runs it. SwiftPM builds it with the tests; `ISOKV_BINARY` overrides.
///
/// The functions block on pipes and `waitpid`: call them from a thread of your own (or accept a short block in a
/// one-shot command test), never in a loop on a cooperative thread.
public enum IsokvExecutable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The path of the executable next to the test bundle, or `ISOKV_BINARY`.
    public static func path() throws(Failure) -> String {
        if let path = ProcessInfo.processInfo.environment["ISOKV_BINARY"] { return path }
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("isokv").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        throw Failure("isokv executable not found near \(exe); run `swift build` first or set ISOKV_BINARY")
    }

    /// Runs `isokv arguments…` to completion; returns its exit status and what it printed.
    public static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = try makeProcess(arguments)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: stdout, as: UTF8.self),
            String(decoding: stderr, as: UTF8.self)
        )
    }

    /// Starts `isokv arguments…`, waits until it prints `READY`, lets it run `delayMicroseconds`, SIGKILLs it and
    /// returns the whole lines it printed (a last line cut by the kill was never reported, so it is dropped).
    /// Fails if the child exits before `READY` or by itself.
    public static func runUntilReadyThenKill(
        _ arguments: [String], delayMicroseconds: UInt32,
        cycle: Int
    ) throws(Failure) -> [Substring] {
        let process: Process
        do { process = try makeProcess(arguments) } catch { throw Failure("cannot start isokv: \(error)") }
        let pipe = Pipe()
        process.standardOutput = pipe
        do { try process.run() } catch { throw Failure("cannot start isokv: \(error)") }
        let fd = pipe.fileHandleForReading.fileDescriptor
        var output = [UInt8]()
        while !String(decoding: output, as: UTF8.self).contains("READY") {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 {
                process.waitUntilExit()
                throw Failure(
                    "cycle \(cycle): child exited (status \(process.terminationStatus)) before READY: "
                        + String(decoding: output, as: UTF8.self))
            }
            output += chunk[..<n]
        }
        usleep(delayMicroseconds)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        output += [UInt8](pipe.fileHandleForReading.readDataToEndOfFile())
        guard process.terminationReason == .uncaughtSignal else {
            throw Failure(
                "cycle \(cycle): child exited by itself: \(String(decoding: output, as: UTF8.self).suffix(500))")
        }
        let text = String(decoding: output, as: UTF8.self)
        let whole =
            text.hasSuffix("\n")
            ? text[...]
            : text[..<(text.lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex)]
        return whole.split(separator: "\n", omittingEmptySubsequences: true)
    }

    /// How a child run ended: its whole output lines, whether it printed `READY`, and whether a signal ended it.
    public struct ChildRun: Sendable {
        public var lines: [Substring]
        public var sawReady: Bool
        public var killedBySignal: Bool
    }

    /// Starts `isokv arguments…` with `environment` added, and lets it end by itself — the crash matrix's child
    /// SIGKILLs itself at its failpoint (`ISOKV_FAILPOINT`). With `killAfterReadyMicroseconds`, the parent SIGKILLs
    /// it that long after it prints `READY` instead. A child still running after `timeoutSeconds` is killed and
    /// reported as a failure (a failpoint that is never reached must fail the test, not hang it). Returns the whole
    /// lines printed (a last line cut by the kill was never reported, so it is dropped).
    public static func runChild(
        _ arguments: [String], environment: [String: String] = [:], killAfterReadyMicroseconds: UInt32? = nil,
        timeoutSeconds: Double = 120
    ) throws(Failure) -> ChildRun {
        let process: Process
        do { process = try makeProcess(arguments, environment: environment) } catch {
            throw Failure("cannot start isokv: \(error)")
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        do { try process.run() } catch { throw Failure("cannot start isokv: \(error)") }
        let fd = pipe.fileHandleForReading.fileDescriptor
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var output = [UInt8]()
        var sawReady = false
        var timedOut = false
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(0, deadline.timeIntervalSinceNow) * 1000)
            let ready = poll(&pfd, 1, min(remaining, 200))
            if ready == 0 {
                if Date() >= deadline { timedOut = true; break }
                continue
            }
            if ready < 0 { if errno == EINTR { continue }; break }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }  // EOF: the child is gone
            output += chunk[..<n]
            if !sawReady, output.contains(UInt8(ascii: "R")),
                String(decoding: output, as: UTF8.self).contains("READY ")
            {
                sawReady = true
                if let delay = killAfterReadyMicroseconds {
                    usleep(delay)
                    kill(process.processIdentifier, SIGKILL)
                }
            }
        }
        if timedOut { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        output += [UInt8](pipe.fileHandleForReading.readDataToEndOfFile())
        let text = String(decoding: output, as: UTF8.self)
        if timedOut {
            throw Failure("child still running after \(timeoutSeconds) s (killed): \(text.suffix(300))")
        }
        let whole =
            text.hasSuffix("\n")
            ? text[...]
            : text[..<(text.lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex)]
        return ChildRun(
            lines: whole.split(separator: "\n", omittingEmptySubsequences: true), sawReady: sawReady,
            killedBySignal: process.terminationReason == .uncaughtSignal)
    }

    private static func makeProcess(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Process
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try path())
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        env.removeValue(forKey: "ISOKV_FAILPOINT")
        env.merge(extra) { _, new in new }
        process.environment = env
        return process
    }
}

/// The task's result, or nil if it has not finished within `seconds` — so that a regression that would leave a
/// test waiting forever fails it instead (the task keeps running; the caller decides how to unblock it).
///
/// ```swift
/// guard let v = try await result(of: reader, within: 20) else { Issue.record("reader still waiting"); return }
/// ```
public func result<T: Sendable>(of task: Task<T, any Error>, within seconds: Double) async throws -> T? {
    let outcome: Result<T, any Error>? = await withCheckedContinuation { continuation in
        let claimed = OnceFlag()
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
            if claimed.claim() { continuation.resume(returning: nil) }
        }
        Task {
            let r = await task.result
            if claimed.claim() { continuation.resume(returning: r) }
            timer.cancel()  // claimed first, so the woken timer's claim fails
        }
    }
    return try outcome?.get()
}

/// True for the first caller of `claim()` only.
final class OnceFlag: Sendable {
    private let taken = Atomic<Bool>(false)
    func claim() -> Bool {
        taken.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }
}

/// The seed of a randomized test: `ISOKV_SEED` (decimal or `0x` hex) if set, otherwise a fresh random one. Printed
/// with the test's label, so that a failing run is replayed exactly with
/// `ISOKV_SEED=<seed> swift test --filter <test>`.
///
/// ```swift
/// var rng = SplitMix64(seed: testSeed("model test"))
/// ```
public func testSeed(_ label: String) -> UInt64 {
    let seed: UInt64
    if let s = ProcessInfo.processInfo.environment["ISOKV_SEED"],
        let n = s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
    {
        seed = n
    } else {
        seed = UInt64.random(in: 0...UInt64.max)
    }
    print("\(label): seed \(seed) (rerun with ISOKV_SEED=\(seed))")
    return seed
}
