import Foundation

/// Runs a program to completion without blocking a thread: its output goes to files and its exit is awaited through
/// the termination handler. For tests that run scripts and peers (benchmark smoke tests).
///
/// ```swift
/// let r = try await ChildProcess.run("/usr/bin/env", ["true"])
/// #expect(r.status == 0)
/// ```
public enum ChildProcess {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:])
        async throws -> Result
    {
        let dir = TemporaryDirectory("child-process")
        defer { dir.remove() }
        _ = FileManager.default.createFile(atPath: dir.file("out"), contents: nil)
        _ = FileManager.default.createFile(atPath: dir.file("err"), contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        env.merge(environment) { $1 }
        process.environment = env
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("out")))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("err")))
        let finished = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in finished.continuation.finish() }
        try process.run()
        for await _ in finished.stream {}
        return Result(
            status: process.terminationStatus,
            stdout: (try? String(contentsOfFile: dir.file("out"), encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: dir.file("err"), encoding: .utf8)) ?? "")
    }

    /// The repository's root (the directory holding Package.swift), from this file's path.
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
}
