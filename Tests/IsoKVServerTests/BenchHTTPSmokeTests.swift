import Foundation
import IsoKVTestSupport
import Testing

/// wrk and nginx for the smoke test: present, or installed once by `scripts/bench-http --install-only` (Debian's
/// packages through apt-get). Only when that fails is the suite skipped, with the reason printed.
enum BenchHTTPTools {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static func present() -> Bool {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        func has(_ name: String) -> Bool {
            path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(name)") }
        }
        return has("wrk") && has("nginx")
    }

    /// Installs the tools at most once per test process.
    static let installation = Task<Bool, Never> {
        if present() { return true }
        print("isokv bench http smoke: wrk or nginx missing; running scripts/bench-http --install-only")
        let result = try? await runToFiles(repository + "/scripts/bench-http", ["--install-only"])
        if result?.status == 0, present() { return true }
        print(
            "isokv bench http smoke: SKIPPED: wrk/nginx could not be installed (status \(result?.status ?? -1)): "
                + (result?.stderr.suffix(400) ?? ""))
        return false
    }
}

/// Runs a command to completion without blocking a thread (``ChildProcess/run(_:_:environment:)``).
func runToFiles(_ executable: String, _ arguments: [String]) async throws -> (
    status: Int32, stdout: String, stderr: String
) {
    let r = try await ChildProcess.run(executable, arguments)
    return (r.status, r.stdout, r.stderr)
}

/// `isokv bench http` end to end with a tiny duration. A smoke test: it checks the output's shape (every workload,
/// every figure, requests answered without errors), never the figures' size.
@Suite(
    "isokv bench http smoke", .serialized,
    .enabled("wrk or nginx is missing and could not be installed (apt-get install wrk nginx)") {
        await BenchHTTPTools.installation.value
    })
struct BenchHTTPSmokeTests {
    static let tiny = [
        "bench", "http", "--duration", "1", "--warmup", "0", "--keys", "200", "--connections", "4", "--threads", "1",
        "--value-size", "64"
    ]

    struct Envelope: Decodable {
        var title: String
        var parameters: [String: String]
        var results: [Row]
    }

    struct Row: Decodable {
        var workload: String
        var server: String
        var requests: Int
        var requestsPerSecond: Double
        var p50Microseconds: Double
        var p99Microseconds: Double
        var meanMicroseconds: Double
        var errors: Int
        var non2xx: Int
        var bytesPerResponse: Double
        var ratioToNginxGet: Double
    }

    @Test("--format json: the four workloads, each with requests/s, p50 ≤ p99, no errors, a ratio to nginx")
    func jsonShape() async throws {
        let (status, stdout, stderr) = try await runToFiles(
            try IsokvExecutable.path(), Self.tiny + ["--durability", "buffered", "--format", "json"])
        #expect(status == 0, "isokv bench http exited \(status): \(stderr)")
        let report = try JSONDecoder().decode(Envelope.self, from: Data(stdout.utf8))
        #expect(report.title == "isokv bench http")
        #expect(report.results.map(\.workload) == ["get-static", "get-hit", "put", "mix-90-10"])
        #expect(report.results.map(\.server) == ["nginx", "isokv", "isokv", "isokv"])
        for row in report.results {
            #expect(row.requests > 0, "\(row.workload): no request completed")
            #expect(row.requestsPerSecond > 0 && row.p50Microseconds > 0, "\(row.workload)")
            #expect(row.p50Microseconds <= row.p99Microseconds, "\(row.workload)")
            #expect(row.errors == 0 && row.non2xx == 0, "\(row.workload): \(row.errors) errors, \(row.non2xx) non-2xx")
            #expect(row.ratioToNginxGet > 0, "\(row.workload)")
        }
        #expect(report.results.first?.ratioToNginxGet == 1)
        // A GET answers the 64-byte value (plus headers), so nothing was a short error page.
        #expect(report.results.allSatisfy { $0.workload == "put" || $0.bytesPerResponse > 64 })
        for name in ["connections", "wrk threads", "value size", "keys", "isokv", "nginx", "machine", "build"] {
            #expect(report.parameters[name] != nil, "parameter \(name) missing")
        }
        #expect(report.parameters["isokv"]?.contains("durability buffered") == true)
        #expect(report.parameters["machine"]?.contains("cores") == true)
        // The server's allocator, from its "listening on" line (jemalloc or glibc: `isokv allocator`).
        let allocator = report.parameters["isokv allocator"] ?? ""
        #expect(allocator.hasPrefix("jemalloc ") || allocator.hasPrefix("glibc, "), "\(allocator)")
        #if DEBUG
            #expect(stderr.contains("debug build"), "a debug build must warn: \(stderr)")
        #endif
        // The run's temporary directory is gone, and no server of it is left running.
        #expect(!stdout.contains("/tmp/isokv-bench-http-"))
    }

    @Test("table: parameters, a header with p50/p99 and the ratio column, one line per workload")
    func tableShape() async throws {
        let (status, stdout, stderr) = try await runToFiles(try IsokvExecutable.path(), Self.tiny)
        #expect(status == 0, "isokv bench http exited \(status): \(stderr)")
        let lines = stdout.split(separator: "\n")
        #expect(lines.first == "isokv bench http")
        #expect(stdout.contains("durability fsync"), "the default durability is fsync")
        let header = try #require(lines.firstIndex { $0.hasPrefix("workload") }, "no table header in \(stdout)")
        for column in ["requests/s", "p50", "p99", "errors", "non-2xx", "vs nginx GET"] {
            #expect(lines[header].contains(column))
        }
        let rows = lines[(header + 2)...].prefix(4)
        #expect(
            rows.map { String($0.split(separator: " ").first ?? "") } == ["get-static", "get-hit", "put", "mix-90-10"])
        #expect(rows.first?.hasSuffix("1.00x") == true)
    }

    @Test("bad options are refused before anything starts")
    func badOptions() async throws {
        for extra in [["--threads", "8", "--connections", "4"], ["--value-size", "0"], ["--durability", "sometimes"]] {
            let (status, _, stderr) = try await runToFiles(
                try IsokvExecutable.path(), ["bench", "http", "--duration", "1"] + extra)
            #expect(status != 0, "\(extra) was accepted")
            #expect(stderr.contains("Error:"), "\(extra): \(stderr)")
        }
    }
}
