import AsyncHTTPClient
import Foundation
import IsoKVTestSupport
import NIOCore
import NIOHTTP1
import Testing

/// Where these suites find PostgreSQL: `ISOKV_POSTGRES_URL`, set by `scripts/pg-test-cluster run -- …` (the test
/// command's PostgreSQL step runs every suite whose name contains `Postgres` that way; a skip fails that step).
enum ServerPostgresEnvironment {
    static let url: String? = {
        let v = ProcessInfo.processInfo.environment["ISOKV_POSTGRES_URL"]
        return v?.isEmpty == false ? v : nil
    }()
    static var isAvailable: Bool { url != nil }
    static let skipReason: Comment =
        "ISOKV_POSTGRES_URL is not set: run `scripts/pg-test-cluster run -- swift test --filter Postgres` (scripts/test does)"

    /// The cluster's URL with a schema no other test uses (`isokv serve` creates it).
    static func freshBackend() -> String {
        let schema = "s_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        return url! + (url!.contains("?") ? "&" : "?") + "schema=\(schema)"
    }
}

/// A small HTTP helper over AsyncHTTPClient for the process tests.
struct HTTP: Sendable {
    let client: HTTPClient

    struct Reply: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: String
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }
    }

    func call(_ method: HTTPMethod, _ url: String, _ body: String? = nil, headers: [(String, String)] = [])
        async throws -> Reply
    {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 1 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: buffer))
    }
}

/// Two `isokv serve --backend postgres://…` processes on one throwaway PostgreSQL cluster, used at the same time:
/// the server keeps no state of its own, so optimistic writes and transactions through either server see each
/// other's effects.
@Suite(
    "Server Postgres scale-out (two servers, one database)", .serialized,
    .enabled(if: ServerPostgresEnvironment.isAvailable, ServerPostgresEnvironment.skipReason))
struct PostgresScaleOutTests {
    /// Starts two servers on one fresh schema, runs `body` with their base URLs, then stops both with SIGTERM and
    /// checks that each exits cleanly.
    func withTwoServers(_ body: (HTTP, [String]) async throws -> Void) async throws {
        let backend = ServerPostgresEnvironment.freshBackend()
        let a = try await ServeProcess.start(arguments: ["--backend", backend])
        defer { a.signal(SIGKILL) }
        let b = try await ServeProcess.start(arguments: ["--backend", backend])
        defer { b.signal(SIGKILL) }
        #expect(a.output.withLock { $0 }.contains("backend: postgresql"))
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let http = HTTP(client: client)
        do {
            for server in [a, b] {
                let ready = try await http.call(.GET, server.base + "/readyz")
                #expect(ready.status == 200 && ready.body == "ready\n", "\(server.base): \(ready.body)")
            }
            try await body(http, [a.base, b.base])
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
        // Clean shutdown of both: exit 0 after the drain, and the store's connections released.
        a.signal(SIGTERM)
        b.signal(SIGTERM)
        #expect(try await a.waitForExit() == 0)
        #expect(try await b.waitForExit() == 0)
        #expect(a.output.withLock { $0 }.contains("stopped"))
        #expect(b.output.withLock { $0 }.contains("stopped"))
    }

    @Test("a write through one server is read through the other")
    func writesAreShared() async throws {
        try await withTwoServers { http, servers in
            let put = try await http.call(
                .PUT, servers[0] + "/v1/kv/shared", "hello", headers: [("If-None-Match", "*")])
            #expect(put.status == 201, "\(put.body)")
            let etag = put.headers.first(name: "ETag")
            let got = try await http.call(.GET, servers[1] + "/v1/kv/shared")
            #expect(got.status == 200)
            #expect(got.body == "hello")
            #expect(got.headers.first(name: "ETag") == etag)
            // The same create through the other server: 412 with the current ETag.
            let again = try await http.call(
                .PUT, servers[1] + "/v1/kv/shared", "again", headers: [("If-None-Match", "*")])
            #expect(again.status == 412)
            #expect(again.headers.first(name: "ETag") == etag)
        }
    }

    @Test("concurrent If-Match read-modify-writes through both servers: exactly one success per increment")
    func etagReadModifyWritesLoseNothing() async throws {
        let workersPerServer = 6
        let incrementsPerWorker = 5
        try await withTwoServers { http, servers in
            let created = try await http.call(.PUT, servers[0] + "/v1/kv/counter", "0")
            #expect(created.status == 201)
            let (successes, conflicts) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for w in 0..<(2 * workersPerServer) {
                    let url = servers[w % 2] + "/v1/kv/counter"
                    group.addTask {
                        var successes = 0
                        var conflicts = 0
                        while successes < incrementsPerWorker {
                            let read = try await http.call(.GET, url)
                            guard read.status == 200, let etag = read.headers.first(name: "ETag"),
                                let n = Int(read.body)
                            else {
                                Issue.record("GET: \(read.status) \(read.body)")
                                return (successes, conflicts)
                            }
                            let write = try await http.call(.PUT, url, String(n + 1), headers: [("If-Match", etag)])
                            switch write.status {
                            case 200: successes += 1
                            case 412: conflicts += 1
                            default:
                                Issue.record("PUT: \(write.status) \(write.body)")
                                return (successes, conflicts)
                            }
                        }
                        return (successes, conflicts)
                    }
                }
                var total = (0, 0)
                for try await (s, c) in group { total = (total.0 + s, total.1 + c) }
                return total
            }
            let expected = 2 * workersPerServer * incrementsPerWorker
            #expect(successes == expected)
            for server in servers {
                let final = try await http.call(.GET, server + "/v1/kv/counter")
                #expect(final.body == String(expected), "through \(server): \(final.body) (\(conflicts) conflicts)")
            }
        }
    }

    @Test("bank transfers in interactive transactions through both servers conserve the total")
    func bankTransfersConserveTheTotal() async throws {
        let accounts = 6
        let initial = 100
        let transfersPerWorker = 8
        let seed = testSeed("bankTransfersConserveTheTotal")
        try await withTwoServers { http, servers in
            for i in 0..<accounts {
                let r = try await http.call(.PUT, servers[i % 2] + "/v1/kv/acct/\(i)", String(initial))
                #expect(r.status == 201)
            }
            let committed = try await withThrowingTaskGroup(of: Int.self) { group in
                for w in 0..<8 {
                    let base = servers[w % 2]
                    // Even workers lock both rows FOR UPDATE at read committed; odd ones run serializable and
                    // read without locks (PostgreSQL's SSI answers 40001 to one of two conflicting transfers).
                    let serializable = w % 4 >= 2
                    group.addTask {
                        var rng = SplitMix64(seed: seed &+ UInt64(w))
                        var done = 0
                        var attempts = 0
                        while done < transfersPerWorker && attempts < 400 {
                            attempts += 1
                            let from = Int(rng.next() % UInt64(accounts))
                            var to = Int(rng.next() % UInt64(accounts - 1))
                            if to >= from { to += 1 }
                            let amount = Int(rng.next() % 20) + 1
                            switch try await transfer(
                                http, base, from: from, to: to, amount: amount, serializable: serializable)
                            {
                            case .committed: done += 1
                            case .retry: try await Task.sleep(for: .milliseconds(Int(rng.next() % 20)))
                            }
                        }
                        #expect(done == transfersPerWorker, "worker \(w) finished \(done) transfers")
                        return done
                    }
                }
                var total = 0
                for try await n in group { total += n }
                return total
            }
            #expect(committed == 8 * transfersPerWorker)
            for server in servers {
                var sum = 0
                for i in 0..<accounts {
                    let r = try await http.call(.GET, server + "/v1/kv/acct/\(i)")
                    sum += Int(r.body) ?? -1_000_000
                }
                #expect(sum == accounts * initial, "the total through \(server) is \(sum)")
            }
        }
    }

    enum TransferResult { case committed, retry }
    struct TransferFailure: Error, CustomStringConvertible { var description: String }

    /// One transfer in an interactive transaction; `.retry` after a retryable conflict (rolled back).
    func transfer(_ http: HTTP, _ base: String, from: Int, to: Int, amount: Int, serializable: Bool) async throws
        -> TransferResult
    {
        let begin = try await http.call(
            .POST, base + "/v1/transactions",
            serializable ? #"{"isolation": "serializable"}"# : #"{"isolation": "read_committed"}"#)
        guard begin.status == 201, let id = begin.json["id"] as? String else {
            Issue.record("begin: \(begin.status) \(begin.body)")
            return .retry
        }
        let tx = base + "/v1/transactions/\(id)"
        /// A retryable failure → `.retry` (after a rollback); anything else fails the test.
        func retry(_ r: HTTP.Reply) async throws -> TransferResult {
            _ = try await http.call(.POST, tx + "/rollback")
            if r.json["retryable"] as? Bool == true { return .retry }
            throw TransferFailure(description: "transfer step: \(r.status) \(r.body)")
        }
        // Reads (locking in key order at read committed, so two transfers never deadlock).
        let keys = [from, to].sorted().map { "acct/\($0)" }
        let lock = serializable ? "" : #", "lock": "for_update""#
        let read = try await http.call(
            .POST, tx + "/ops",
            #"{"ops": [{"op": "get", "key": "\#(keys[0])"\#(lock)}, {"op": "get", "key": "\#(keys[1])"\#(lock)}]}"#)
        guard read.status == 200, let results = read.json["results"] as? [[String: Any]], results.count == 2 else {
            return try await retry(read)
        }
        var balance: [String: Int] = [:]
        for (k, r) in zip(keys, results) { balance[k] = Int(r["value"] as? String ?? "") ?? 0 }
        balance["acct/\(from)"]! -= amount
        balance["acct/\(to)"]! += amount
        for k in keys {
            let w = try await http.call(.PUT, tx + "/kv/" + k, String(balance[k]!))
            guard (200..<300).contains(w.status) else { return try await retry(w) }
        }
        let commit = try await http.call(.POST, tx + "/commit")
        guard commit.status == 200 else { return try await retry(commit) }
        return .committed
    }
}
