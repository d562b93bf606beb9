import ArgumentParser

/// The one IsoKV executable. Every subsystem adds its subcommands here.
@main
struct IsoKVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "isokv",
        abstract: "IsoKV: a transactional key-value store and a concurrency lab.",
        subcommands: [Serve.self, Bench.self, Lab.self, Check.self, Backup.self, CrashChild.self, AllocatorCommand.self]
    )

    /// Chooses the allocator (``Allocator``; this may re-execute the process) before anything else runs, then
    /// parses and runs.
    static func main() async {
        _ = Allocator.setting
        await main(nil)
    }
}

/// `isokv bench …`: every benchmark prints a table (or `--format json`) with ratios to a baseline of the same run.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a benchmark.",
        subcommands: [BenchMaps.self, BenchEngine.self, BenchDurability.self, BenchHTTP.self, BenchMemory.self]
    )
}

/// Output format shared by the bench and lab commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json
}
