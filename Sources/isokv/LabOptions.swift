import ArgumentParser
import Foundation
import IsoKVConformance
import IsoKVLab
import IsoKVLabBackends

/// The backend options every `isokv lab` command takes (`isokv lab report` too).
struct LabBackendOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "embedded | postgres://… | http://… | all",
            discussion: """
                all = the embedded engine, PostgreSQL when a URL is given (--postgres or ISOKV_POSTGRES_URL), and \
                the HTTP server (an in-process server on an in-memory engine on a free loopback port, or --http URL).
                """))
    var backend: String = "embedded"
    @Option(help: "PostgreSQL URL used by --backend all (default: $ISOKV_POSTGRES_URL).") var postgres: String?
    @Option(help: "HTTP server URL used by --backend all instead of an in-process server.") var http: String?
    @Option(help: "Bearer token of the HTTP server.") var token: String?

    /// The backends named, in order.
    func specs() throws -> [LabBackendSpec] {
        let env = ProcessInfo.processInfo.environment["ISOKV_POSTGRES_URL"]
        do {
            return try LabBackendSpec.parse(backend, postgresURL: postgres ?? env, httpURL: http, token: token)
        } catch {
            throw ValidationError("--backend: \(error)")
        }
    }
}

/// The options every `isokv lab` experiment takes.
struct LabOptions: ParsableArguments {
    @OptionGroup var backends: LabBackendOptions
    @Flag(help: "Small sizes and short runs (what the test command runs).") var quick = false
    @Option(help: "Seed of the schedule (task start order, key choice, backoff jitter).") var seed: UInt64 = 1
    @Option(help: "table | json") var format: OutputFormat = .table

    /// The backends named, in order.
    func specs() throws -> [LabBackendSpec] { try backends.specs() }

    /// The parameters lines every report starts with.
    func parameterLines(_ specs: [LabBackendSpec]) -> [(String, String)] {
        [
            ("backends", specs.map(\.description).joined(separator: "; ")), ("seed", "\(seed)"),
            ("quick", quick ? "yes" : "no")
        ]
    }
}

/// A progress bar on stderr for an experiment that runs longer than a second; nothing when stderr is not a terminal.
enum ProgressBar {
    static func run<R>(_ progress: LabProgress, _ body: () async throws -> R) async throws -> R {
        guard isatty(STDERR_FILENO) == 1 else { return try await body() }
        let drawer = Task {
            try? await Task.sleep(for: .seconds(1))
            while !Task.isCancelled {
                draw(progress.snapshot)
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        defer {
            drawer.cancel()
            FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
        }
        let result = try await body()
        drawer.cancel()
        _ = await drawer.value
        return result
    }

    static func draw(_ s: (done: Int, total: Int, label: String)) {
        let width = 30
        let fraction = s.total > 0 ? min(1, Double(s.done) / Double(s.total)) : 0
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let label = s.label.count > 48 ? String(s.label.prefix(47)) + "…" : s.label
        let line = "\r\u{1B}[2K[\(bar)] \(s.done)/\(s.total) \(label)"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
