import ArgumentParser
import Foundation
import MapBenchmarks

/// `isokv lab maps`: seed 000's concurrent-map comparison, through `bench maps`, with Go's sync.Map beside ours when
/// Go is installed and the Go peer's source (`scripts/go-syncmap-bench`) is found from the current directory.
struct LabMaps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maps",
        abstract: "Seed 000: the concurrent maps on Go's sync.Map workloads, with Go's sync.Map when Go is installed.",
        discussion: """
            Runs `isokv bench maps` (every map implementation on every workload of Go's map_bench_test.go, ratios \
            to the mutex map, 1→N scaling). When `go` is on the PATH and scripts/go-syncmap-bench is found from \
            the current directory, the Go peer runs first with the same parameters and its rows (go:…) join the \
            table, divided by our mutex map too. Build in release for meaningful numbers. --backend does not apply \
            (in-memory maps, no store); --seed is recorded only (the workloads' keys are fixed, as Go's).
            """)

    @OptionGroup var lab: LabOptions
    @Option(help: "Comma-separated thread counts (default 1,2; --quick 1,2).") var threads: String = "1,2"
    @Option(help: "Measured seconds per cell (default 1; --quick 0.05).") var duration: Double?
    @Option(help: "Comma-separated workloads (default: all).") var workload: String?

    func run() async throws {
        let seconds = duration ?? (lab.quick ? 0.05 : 1)
        let warmup = lab.quick ? 0.01 : 0.2
        var arguments = [
            "--threads", threads, "--duration", "\(seconds)", "--warmup", "\(warmup)", "--format", lab.format.rawValue
        ]
        if let workload { arguments += ["--workload", workload] }
        let peer = try await Self.goPeer(threads: threads, duration: seconds, warmup: warmup, workload: workload)
        defer { if let peer { try? FileManager.default.removeItem(atPath: peer) } }
        if let peer {
            arguments += ["--peer", peer]
        } else if lab.format == .table {
            FileHandle.standardError.write(
                Data("  (no Go peer: `go` not on the PATH or scripts/go-syncmap-bench not found from here)\n".utf8))
        }
        let bench = try BenchMaps.parse(arguments)
        try bench.validate()
        try bench.run()
    }

    /// Runs the Go peer and returns the path of its JSON, or nil when Go or its source is missing.
    static func goPeer(threads: String, duration: Double, warmup: Double, workload: String?) async throws -> String? {
        let source = FileManager.default.currentDirectoryPath + "/scripts/go-syncmap-bench"
        guard FileManager.default.fileExists(atPath: source + "/main.go"),
            let go = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
                .map({ $0 + "/go" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { return nil }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent(
            "isokv-go-maps-\(UUID().uuidString).json"
        ).path
        var arguments = ["run", ".", "-threads", threads, "-duration", "\(duration)", "-warmup", "\(warmup)", "-o", out]
        if let workload { arguments += ["-workload", workload] }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: go)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: source)
        process.standardOutput = FileHandle.standardError
        try process.run()
        // Wait on a thread of its own, never a cooperative one.
        let status: Int32 = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
        guard status == 0 else { throw ValidationError("the Go peer failed (exit status \(status))") }
        return out
    }
}
