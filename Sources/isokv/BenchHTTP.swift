import ArgumentParser
import Foundation
import IsoKV

/// `isokv bench http`: `isokv serve`'s requests/s and latency under `wrk`, beside nginx serving a static file of the
/// same size on loopback, measured in the same invocation.
///
/// One run, in this order: the store is preloaded with `--keys` keys in a temporary directory; `isokv serve` (this
/// executable, on a free loopback port, with `--durability`) and nginx (its own config in a temporary directory, a
/// free loopback port, the value as its only file) start; then wrk drives, back to back, nginx GET (the baseline),
/// isokv GET hit, isokv PUT and the 90/10 GET/PUT mix, each after a warm-up. Both servers are stopped at the end,
/// also when a step fails. Every row is divided by nginx's GET requests/s of the same run.
///
/// ```sh
/// swift build -c release --product isokv
/// .build/release/isokv bench http --duration 10 --connections 64
/// ```
struct BenchHTTP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "isokv serve's GET/PUT requests/s and p50/p99 under wrk, vs nginx serving a static file."
    )

    @Option(help: "Open HTTP connections (wrk -c), shared by the wrk threads.")
    var connections = 64
    @Option(help: "wrk threads (wrk -t); at most --connections.")
    var threads = 2
    @Option(help: "Seconds measured per workload (whole seconds; wrk's unit).")
    var duration = 10
    @Option(help: "Seconds of unmeasured load before each workload (0: none).")
    var warmup = 2
    @Option(help: "Value bytes: every preloaded value, every PUT body and nginx's file.")
    var valueSize = 100
    @Option(help: "Keys preloaded and addressed uniformly at random.")
    var keys = 10_000
    @Option(help: "isokv serve's durability: fsync (what users run), buffered, unsafe-no-sync.")
    var durability = "fsync"
    @Option(help: "Path of the wrk executable (default: found in PATH).")
    var wrk: String?
    @Option(help: "Path of the nginx executable (default: found in PATH, /usr/sbin).")
    var nginx: String?
    @Option var format: OutputFormat = .table

    /// One measured workload, as `--format json` prints it.
    struct Row: Encodable {
        /// `get-static` (nginx), `get-hit`, `put`, `mix-90-10`.
        var workload: String
        /// `nginx` or `isokv`.
        var server: String
        var requests: Int
        var requestsPerSecond: Double
        var p50Microseconds: Double
        var p99Microseconds: Double
        var meanMicroseconds: Double
        /// Socket errors (connect, read, write) and timeouts.
        var errors: Int
        /// Responses with a status of 400 or more (wrk's count; no request here can draw a 1xx or 3xx).
        var non2xx: Int
        /// Response bytes (headers and body) per request.
        var bytesPerResponse: Double
        /// requests/s ÷ nginx's GET requests/s in this run.
        var ratioToNginxGet: Double
    }

    static let goal = 0.70

    func run() async throws {
        guard connections >= 1, threads >= 1, threads <= connections else {
            throw ValidationError("--connections must be ≥ 1 and --threads in 1...connections")
        }
        guard duration >= 1, warmup >= 0 else { throw ValidationError("--duration ≥ 1 and --warmup ≥ 0 (seconds)") }
        guard (1...(1 << 20)).contains(valueSize) else { throw ValidationError("--value-size must be in 1...1048576") }
        guard (1...10_000_000).contains(keys) else { throw ValidationError("--keys must be in 1...10000000") }
        let mode: Database.Durability =
            switch durability {
            case "fsync": .fsync
            case "buffered": .buffered
            case "unsafe-no-sync": .unsafeNoSync
            default: throw ValidationError("--durability must be fsync, buffered or unsafe-no-sync")
            }
        var tools = try BenchTools.locate(wrk: wrk, nginx: nginx)
        if Self.isDebugBuild {
            Self.warn(
                "isokv bench http: this isokv is a debug build, so the server measured is unoptimized; "
                    + "build with `swift build -c release --product isokv` and run .build/release/isokv")
        }

        let work = try BenchDirectory("bench-http")
        defer { work.remove() }
        await tools.readVersions(in: work)
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: valueSize)
        try await Self.preload(path: work.path("data"), keys: keys, value: value)

        let servers = ChildProcesses()
        let report: Report<Row>
        do {
            let (isokv, allocator) = try await servers.startIsokv(
                executable: try BenchTools.ownExecutable(), data: work.path("data"), durability: durability,
                log: work.path("isokv.log"))
            let nginxPort = try await servers.startNginx(
                executable: tools.nginx, directory: try work.makeDirectory("nginx", mode: 0o755), value: value)
            let scripts = try WrkScripts.write(in: work.path(""), keys: keys, valueSize: valueSize)
            let runner = WrkRunner(
                executable: tools.wrk, connections: connections, threads: threads, output: work.path(""))
            var measured: [(workload: String, server: String, WrkResult)] = []
            let plan: [(String, String, Int, String)] = [
                ("get-static", "nginx", nginxPort, scripts.get),
                ("get-hit", "isokv", isokv, scripts.get),
                ("put", "isokv", isokv, scripts.put),
                ("mix-90-10", "isokv", isokv, scripts.mix)
            ]
            for (workload, server, port, script) in plan {
                if warmup > 0 {
                    _ = try await runner.run(port: port, script: script, seconds: warmup, label: workload + "-warmup")
                }
                let result = try await runner.run(port: port, script: script, seconds: duration, label: workload)
                measured.append((workload, server, result))
            }
            report = makeReport(measured, mode: mode, tools: tools, allocator: allocator)
            try await servers.stopAll()
        } catch {
            try? await servers.stopAll()
            if let log = try? String(contentsOfFile: work.path("isokv.log"), encoding: .utf8), !log.isEmpty {
                Self.warn("isokv serve's log:\n" + log.split(separator: "\n").suffix(20).joined(separator: "\n"))
            }
            throw error
        }
        print(try report.render(format))
    }

    func makeReport(
        _ measured: [(workload: String, server: String, WrkResult)], mode: Database.Durability, tools: BenchTools,
        allocator: String
    )
        -> Report<Row>
    {
        let baseline = measured.first { $0.workload == "get-static" }?.2.requestsPerSecond ?? .nan
        var report = Report<Row>(
            title: "isokv bench http",
            parameters: [
                (
                    "workloads",
                    "GET static file (nginx); GET hit, PUT raw bytes, 90/10 GET/PUT (isokv serve); keys uniform"
                ),
                ("connections", "\(connections)"), ("wrk threads", "\(threads)"),
                ("duration", "\(duration) s per workload after \(warmup) s warm-up"),
                ("value size", "\(valueSize) bytes"), ("keys", "\(keys)"),
                (
                    "isokv",
                    "isokv serve, embedded durable store, durability \(durability) (\(Self.meaning(mode))), no token"
                ),
                ("isokv allocator", allocator),
                (
                    "nginx",
                    "\(tools.nginxVersion): worker_processes auto, access_log off, open_file_cache, keepalive_requests 1000000"
                ),
                ("wrk", tools.wrkVersion),
                ("machine", Self.machine()),
                ("build", Self.isDebugBuild ? "debug (unoptimized: figures are not meaningful)" : "release")
            ],
            columns: [
                "workload", "server", "requests/s", "p50", "p99", "errors", "non-2xx", "bytes/resp", "vs nginx GET"
            ])
        for (workload, server, r) in measured {
            let ratio = r.requestsPerSecond / baseline
            report.add(
                [
                    workload, server, Figure.rate(r.requestsPerSecond),
                    Figure.duration(nanoseconds: r.p50Microseconds * 1000),
                    Figure.duration(nanoseconds: r.p99Microseconds * 1000), "\(r.errors)", "\(r.non2xx)",
                    String(format: "%.0f", r.bytesPerResponse), Figure.ratio(ratio)
                ],
                Row(
                    workload: workload, server: server, requests: r.requests, requestsPerSecond: r.requestsPerSecond,
                    p50Microseconds: r.p50Microseconds, p99Microseconds: r.p99Microseconds,
                    meanMicroseconds: r.meanMicroseconds, errors: r.errors, non2xx: r.non2xx,
                    bytesPerResponse: r.bytesPerResponse, ratioToNginxGet: ratio.isFinite ? ratio : 0))
        }
        report.notes = [
            "vs nginx GET: requests/s ÷ nginx's GET requests/s in this run (goal for isokv GET hit: ≥ \(Figure.ratio(Self.goal)))",
            "wrk, nginx and isokv serve share this machine's cores; p50/p99 are wrk's (from each request's send to its response)",
            "non-2xx: responses with status ≥ 400 (wrk's count); errors: socket errors and timeouts"
        ]
        if Self.isDebugBuild { report.notes.append("WARNING: debug build; use a release build for figures") }
        return report
    }

    /// Writes `keys` keys `k00000000`… with `value` into a new store at `path`, in transactions of 5000 writes,
    /// without waiting for fsyncs (`buffered`); `close()` flushes them before `isokv serve` opens the directory.
    static func preload(path: String, keys: Int, value: [UInt8]) async throws {
        let db = try await Database.open(path: path, options: .init(durability: .buffered))
        let bytes = Bytes(value)
        var next = 0
        do {
            while next < keys {
                let end = min(keys, next + 5000)
                let range = next..<end
                try await db.transaction(.readCommitted) { tx in
                    for i in range { try await tx.put(Bytes(Array(WrkScripts.key(i).utf8)), bytes) }
                }
                next = end
            }
        } catch {
            await db.close()
            throw error
        }
        await db.close()
    }

    /// When a PUT is acknowledged in `mode`.
    static func meaning(_ mode: Database.Durability) -> String {
        switch mode {
        case .fsync: "a PUT is acknowledged once fdatasync'd"
        case .buffered: "a PUT is acknowledged in the page cache"
        case .unsafeNoSync: "a PUT is acknowledged before it is written"
        }
    }

    /// SwiftPM compiles debug builds with `-DDEBUG`.
    static var isDebugBuild: Bool {
        #if DEBUG
            true
        #else
            false
        #endif
    }

    /// "2 cores (Intel …), load average 1.23 at start".
    static func machine() -> String {
        var text = "\(ProcessInfo.processInfo.activeProcessorCount) cores"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
            let colon = line.firstIndex(of: ":")
        {
            text += " (\(line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))"
        }
        if let load = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8),
            let first = load.split(separator: " ").first
        {
            text += ", load average \(first) at start"
        }
        return text
    }

    static func warn(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
