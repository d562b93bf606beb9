import AsyncHTTPClient
import Foundation
import IsoKV
import IsoKVCore
import IsoKVTestSupport
import NIOCore
import IsoKVSync
import Synchronization
import Testing

/// `isokv serve` as users run it: a child process on a free loopback port over a temporary data directory.
final class ServeProcess: Sendable {
    let process: Process
    let port: Int
    let output: Locked<String>

    var base: String { "http://127.0.0.1:\(port)" }

    /// Starts `isokv serve --data DATA --listen 127.0.0.1:0 …` and returns once it prints where it listens.
    static func start(data: String, extra: [String] = []) async throws -> ServeProcess {
        try await start(arguments: ["--data", data] + extra)
    }

    /// Starts `isokv serve --listen 127.0.0.1:0 ARGUMENTS` and returns once it prints where it listens.
    static func start(arguments: [String]) async throws -> ServeProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try IsokvExecutable.path())
        process.arguments = ["serve", "--listen", "127.0.0.1:0"] + arguments
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Read stdout on a thread of its own (a blocking read must not hold a cooperative thread).
        let output = Locked("")
        let port: Int = try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                var resumed = false
                let handle = out.fileHandleForReading
                while true {
                    let data = handle.availableData
                    if data.isEmpty { break }
                    let text = output.withLock {
                        $0 += String(decoding: data, as: UTF8.self); return $0
                    }
                    if !resumed, let range = text.range(of: "listening on http://127.0.0.1:") {
                        let digits = text[range.upperBound...].prefix { $0.isNumber }
                        resumed = true
                        continuation.resume(returning: Int(digits) ?? 0)
                    }
                }
                if !resumed {
                    continuation.resume(
                        throwing: IsokvExecutable.Failure(
                            "isokv serve exited before listening: \(output.withLock { $0 })"))
                }
            }
            thread.start()
        }
        return ServeProcess(process: process, port: port, output: output)
    }

    private init(process: Process, port: Int, output: Locked<String>) {
        self.process = process
        self.port = port
        self.output = output
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits (suspending) for the process to exit; returns its status.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline { return nil }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }
}

/// Runs a command to completion without blocking a cooperative thread; returns its status and output.
func runCommand(_ executable: String, _ arguments: [String]) async throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    let finished = AsyncStream<Void>.makeStream()
    process.terminationHandler = { _ in finished.continuation.finish() }
    try process.run()
    for await _ in finished.stream {}
    let data = out.fileHandleForReading.readDataToEndOfFile()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A parsed `curl -s -i` answer.
struct CurlResponse {
    var status: Int
    var headers: [String: String]
    var body: String

    init(_ raw: String) {
        let normalized = raw.replacingOccurrences(of: "\r\n", with: "\n")
        let parts = normalized.components(separatedBy: "\n\n")
        let head = parts.first ?? ""
        body = parts.dropFirst().joined(separator: "\n\n")
        let lines = head.split(separator: "\n")
        status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        var h: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            h[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        headers = h
    }
}

@Suite("Server process (isokv serve)", .serialized)
struct ServeProcessTests {
    func curl(_ args: [String]) async throws -> CurlResponse {
        let (status, out) = try await runCommand("/usr/bin/curl", ["-s", "-i", "--max-time", "10"] + args)
        #expect(status == 0, "curl \(args) exited \(status)")
        return CurlResponse(out)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
    func etagDanceWithCurl() async throws {
        let dir = TemporaryDirectory("serve-curl")
        defer { dir.remove() }
        let token = dir.file("token")
        try "t0ken\n".write(toFile: token, atomically: true, encoding: .utf8)
        chmod(token, 0o600)
        let server = try await ServeProcess.start(data: dir.file("data"), extra: ["--token-file", token])
        defer { server.signal(SIGKILL) }
        let url = server.base + "/v1/kv/docs/readme"
        let auth = ["-H", "Authorization: Bearer t0ken"]

        var r = try await curl(["-X", "PUT", "--data-binary", "v1", "-H", "If-None-Match: *", url])
        #expect(r.status == 401)
        #expect(r.headers["content-type"] == "application/problem+json")
        r = try await curl(auth + ["-X", "PUT", "--data-binary", "v1", "-H", "If-None-Match: *", url])
        #expect(r.status == 201, "\(r.body)")
        let e1 = try #require(r.headers["etag"])
        r = try await curl(auth + ["-X", "PUT", "--data-binary", "again", "-H", "If-None-Match: *", url])
        #expect(r.status == 412)
        #expect(r.headers["etag"] == e1)
        r = try await curl(auth + [url])
        #expect(r.status == 200)
        #expect(r.body == "v1")
        #expect(r.headers["etag"] == e1)
        r = try await curl(auth + ["-H", "If-None-Match: \(e1)", url])
        #expect(r.status == 304)
        r = try await curl(auth + ["-X", "PUT", "--data-binary", "v2", "-H", "If-Match: \(e1)", url])
        #expect(r.status == 200)
        let e2 = try #require(r.headers["etag"])
        #expect(e2 != e1)
        r = try await curl(auth + ["-X", "PUT", "--data-binary", "lost update", "-H", "If-Match: \(e1)", url])
        #expect(r.status == 412)
        #expect(r.headers["etag"] == e2)
        #expect(r.body.contains("\"code\":\"IK412\""))
        r = try await curl(auth + ["-X", "DELETE", "-H", "If-Match: \(e2)", url])
        #expect(r.status == 204)
        r = try await curl(auth + [url])
        #expect(r.status == 404)
        r = try await curl([server.base + "/healthz"])
        #expect(r.status == 200)
        // The data directory is private.
        let mode = (try FileManager.default.attributesOfItem(atPath: dir.file("data"))[.posixPermissions] as? Int) ?? 0
        #expect(mode & 0o777 == 0o700)
        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)
    }

    @Test func refusesANonLoopbackAddressWithoutAToken() async throws {
        let dir = TemporaryDirectory("serve-refuse")
        defer { dir.remove() }
        let (status, _) = try await runCommand(
            try IsokvExecutable.path(),
            ["serve", "--data", dir.file("data"), "--listen", "0.0.0.0:0"])
        #expect(status != 0)
        #expect(!FileManager.default.fileExists(atPath: dir.file("data")))
        let (badMode, _) = try await runCommand(
            try IsokvExecutable.path(),
            ["serve", "--data", dir.file("data"), "--durability", "sometimes"])
        #expect(badMode != 0)
        // A data directory other users can write is refused (by Database.open, the one place that checks).
        try FileManager.default.createDirectory(atPath: dir.file("open"), withIntermediateDirectories: true)
        chmod(dir.file("open"), 0o777)
        let (openDir, _) = try await runCommand(
            try IsokvExecutable.path(), ["serve", "--data", dir.file("open"), "--listen", "127.0.0.1:0"])
        #expect(openDir != 0)
        #expect(!FileManager.default.fileExists(atPath: dir.file("open") + "/LOCK"))
        // --data belongs to the embedded store.
        let (mixed, _) = try await runCommand(
            try IsokvExecutable.path(),
            ["serve", "--backend", "postgres://nobody@127.0.0.1:1/none", "--data", dir.file("data")])
        #expect(mixed != 0)
    }

    /// Concurrent PUTs of distinct keys until `stop`; returns the keys (and values) that got a 2xx, and every
    /// status seen.
    func load(_ base: String, writers: Int, until stop: @escaping @Sendable () -> Bool) async throws
        -> (acked: [String: String], statuses: [Int])
    {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let results = try await withThrowingTaskGroup(of: ([String: String], [Int]).self) { group in
            for w in 0..<writers {
                group.addTask {
                    var acked: [String: String] = [:]
                    var statuses: [Int] = []
                    var i = 0
                    var failures = 0
                    while !stop() && failures < 20 {
                        let key = "load/\(w)/\(i)"
                        let value = "value-\(w)-\(i)"
                        var request = HTTPClientRequest(url: base + "/v1/kv/" + key)
                        request.method = .PUT
                        request.body = .bytes(ByteBuffer(string: value))
                        do {
                            let response = try await client.execute(request, timeout: .seconds(10))
                            _ = try await response.body.collect(upTo: 1 << 16)
                            statuses.append(Int(response.status.code))
                            if (200..<300).contains(Int(response.status.code)) { acked[key] = value }
                        } catch {
                            failures += 1  // connection refused or reset once the server is gone
                            try await Task.sleep(for: .milliseconds(5))
                        }
                        i += 1
                    }
                    return (acked, statuses)
                }
            }
            var acked: [String: String] = [:]
            var statuses: [Int] = []
            for try await (a, s) in group { acked.merge(a) { x, _ in x }; statuses += s }
            return (acked, statuses)
        }
        try await client.shutdown()
        return results
    }

    func verify(_ acked: [String: String], in path: String) async throws {
        let db = try await Database.open(path: path)
        var missing = 0
        for (key, value) in acked where try await db.get(Bytes(key))?.value != Bytes(value) { missing += 1 }
        await db.close()
        #expect(missing == 0, "\(missing) of \(acked.count) acknowledged writes are missing after restart")
    }

    @Test func sigtermDuringLoadLosesNothingAcknowledged() async throws {
        let dir = TemporaryDirectory("serve-term")
        defer { dir.remove() }
        let server = try await ServeProcess.start(data: dir.file("data"), extra: ["--drain-delay-ms", "3000"])
        defer { server.signal(SIGKILL) }
        let stopAt = ContinuousClock.now + .seconds(3)
        async let loaded = load(server.base, writers: 8) { ContinuousClock.now > stopAt }
        try await Task.sleep(for: .milliseconds(400))
        var r = try await curl(["-X", "POST", "--data", "{}", server.base + "/v1/transactions"])
        #expect(r.status == 201)
        server.signal(SIGTERM)
        // During the drain delay (3 s: ample on a loaded machine): not ready, no new transactions, one-shot writes
        // still served.
        try await Task.sleep(for: .milliseconds(100))
        r = try await curl([server.base + "/readyz"])
        #expect(r.status == 503, "\(r.body)")
        r = try await curl(["-X", "POST", "--data", "{}", server.base + "/v1/transactions"])
        #expect(r.status == 503)
        #expect(r.body.contains("57P01"))
        r = try await curl(["-X", "PUT", "--data-binary", "during drain", server.base + "/v1/kv/drain"])
        #expect(r.status == 201)
        let drainWrite: [String: String] = r.status == 201 ? ["drain": "during drain"] : [:]
        let (acked, statuses) = try await loaded
        #expect(try await server.waitForExit() == 0)
        #expect(acked.count > 0)
        #expect(statuses.allSatisfy { (200..<300).contains($0) || $0 == 503 }, "\(Set(statuses))")
        #expect(server.output.withLock { $0 }.contains("stopped"))
        try await verify(acked.merging(drainWrite) { a, _ in a }, in: dir.file("data"))
        // The restarted server serves them too.
        let again = try await ServeProcess.start(data: dir.file("data"))
        defer { again.signal(SIGKILL) }
        let (_, sample) = try await runCommand(
            "/usr/bin/curl", ["-s", again.base + "/v1/kv/" + (acked.keys.first ?? "none")])
        #expect(sample == acked.values.first ?? "")
        again.signal(SIGTERM)
        #expect(try await again.waitForExit() == 0)
    }

    @Test func killDashNineDuringLoadLosesNothingAcknowledged() async throws {
        let dir = TemporaryDirectory("serve-kill")
        defer { dir.remove() }
        let server = try await ServeProcess.start(data: dir.file("data"))
        let stopAt = ContinuousClock.now + .seconds(3)
        async let loaded = load(server.base, writers: 8) { ContinuousClock.now > stopAt }
        try await Task.sleep(for: .milliseconds(400))
        server.signal(SIGKILL)
        let (acked, _) = try await loaded
        _ = try await server.waitForExit()
        #expect(acked.count > 0)
        try await verify(acked, in: dir.file("data"))
    }
}
