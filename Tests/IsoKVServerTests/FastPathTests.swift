import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import IsoKV
import IsoKVCore
@testable import IsoKVServer
import Testing

/// The GET fast path (FastGet.swift) against the router: every GET case over real sockets, on a server with the
/// fast path and on one without, must give the same status, headers (in order; `Date` aside) and body, and the
/// fast path must have answered exactly the plain hits.
@Suite("Server GET fast path")
struct FastPathTests {
    struct Case: Sendable {
        var uri: String
        var method: HTTPRequest.Method = .get
        var headers: [(String, String)] = []
        /// Answered by the fast path itself (a plain hit); every other case goes to the router.
        var fast = false
    }

    struct Answer: Equatable, CustomStringConvertible {
        var status: Int
        var headers: [String]
        var body: [UInt8]
        var description: String { "\(status) \(headers) \(String(decoding: body, as: UTF8.self))" }
    }

    static let token = "s3cret-token"

    static func cases(auth: [(String, String)]) -> [Case] {
        let id = ("X-Request-Id", "fast-test-1")
        let longKey = String(repeating: "k", count: 5000)
        return [
            Case(uri: "/v1/kv/a", headers: auth + [id], fast: true),
            Case(uri: "/v1/kv/dir/b%2Fc%00", headers: auth + [id], fast: true),
            Case(uri: "/v1/kv/a", headers: auth + [id, ("Connection", "keep-alive")], fast: true),
            Case(uri: "/v1/kv/a", headers: auth + [id, ("Accept", "application/octet-stream")], fast: true),
            Case(uri: "/v1/kv/missing", headers: auth + [id]),
            Case(uri: "/v1/kv/%zz", headers: auth + [id]),
            Case(uri: "/v1/kv/a//b", headers: auth + [id]),
            Case(uri: "/v1/kv/%2E", headers: auth + [id]),
            Case(uri: "/v1/kv/" + longKey, headers: auth + [id]),
            Case(uri: "/v1/kv/%FF%FFx", headers: auth + [id]),
            Case(uri: "/v1/kv/a", headers: auth + [id, ("If-None-Match", "\"1\"")]),
            Case(uri: "/v1/kv/a", headers: auth + [id, ("If-None-Match", "\"999\"")]),
            Case(uri: "/v1/kv/a", headers: auth + [id, ("If-Match", "\"999\"")]),
            Case(uri: "/v1/kv/a", headers: auth + [id, ("If-None-Match", "bogus")]),
            Case(uri: "/v1/kv/a", headers: auth + [id, ("Accept", "application/json")]),
            Case(uri: "/v1/kv/a?base64=true", headers: auth + [id, ("Accept", "application/json")]),
            Case(uri: "/v1/kv/a?x=1", headers: auth + [id]),
            Case(uri: "/v1/kv/a", method: .head, headers: auth + [id]),
            Case(uri: "/v1/kv", headers: auth + [id])
        ]
    }

    /// Runs `cases` on a fresh server (fast path on or off) holding `a` and `dir/b/c\0`; returns the answers and
    /// how many the fast path wrote.
    static func answers(fastPath: Bool, token: String?, _ cases: [Case]) async throws -> ([Answer], Int) {
        let db = Database.inMemory()
        _ = try await db.put("a", "value of a")
        _ = try await db.put(Bytes(Array("dir/b/c".utf8) + [0]), Bytes([0, 1, 2, 255]))
        let server = try makeServer(db) {
            $0.fastPath = fastPath
            $0.token = token
        }
        let answers = try await server.application.test(.live) { client in
            var out: [Answer] = []
            for c in cases {
                let r = try await client.send(c.method, c.uri, headers: c.headers)
                out.append(
                    Answer(
                        status: Int(r.status.code),
                        headers: r.headers.filter { $0.name != .date }.map { "\($0.name.rawName): \($0.value)" },
                        body: Array(buffer: r.body)))
            }
            return out
        }
        return (answers, server.state.metrics.fastGets.load(ordering: .relaxed))
    }

    @Test(arguments: [false, true])
    func fastPathAnswersExactlyAsTheRouter(withToken: Bool) async throws {
        let token = withToken ? Self.token : nil
        var cases = Self.cases(auth: withToken ? [("Authorization", "Bearer \(Self.token)")] : [])
        if withToken {
            let id = ("X-Request-Id", "fast-test-2")
            cases += [
                Case(uri: "/v1/kv/a", headers: [id]),
                Case(uri: "/v1/kv/a", headers: [id, ("Authorization", "Bearer wrong")]),
                Case(uri: "/v1/kv/a", headers: [id, ("Authorization", "bearer \(Self.token)")], fast: true),
                Case(uri: "/v1/kv/a", headers: [id, ("Authorization", "Basic \(Self.token)")])
            ]
        }
        let (viaRouter, routerFast) = try await Self.answers(fastPath: false, token: token, cases)
        let (viaFast, fastCount) = try await Self.answers(fastPath: true, token: token, cases)
        #expect(routerFast == 0)
        #expect(fastCount == cases.filter(\.fast).count)
        for (i, c) in cases.enumerated() {
            #expect(viaFast[i] == viaRouter[i], "\(c.method) \(c.uri.prefix(40)) \(c.headers)")
        }
        // The cases mean what they say: hits are 200 with the value, the rest not all 200.
        #expect(viaFast[0].status == 200 && viaFast[0].body == Array("value of a".utf8))
        #expect(viaFast[1].body == [0, 1, 2, 255])
        #expect(viaFast[4].status == 404)
        #expect(viaFast[10].status == 304)
    }

    /// Without `X-Request-Id` the fast path generates one like the router does, and records the request metric.
    @Test func generatedRequestIDsAndMetrics() async throws {
        let db = Database.inMemory()
        _ = try await db.put("a", "1")
        let server = try makeServer(db)
        try await server.application.test(.live) { client in
            let r = try await client.send(.get, "/v1/kv/a")
            #expect(r.status == .ok)
            #expect(r.header("X-Request-Id")?.hasPrefix("req-") == true)
            #expect(r.header("Date")?.hasSuffix(" GMT") == true)
            let metrics = try await client.send(.get, "/metrics").text
            #expect(
                metrics.contains(
                    #"isokv_http_requests_total{route="/v1/kv/{key}",method="GET",status="200"} 1"#), "\(metrics)")
        }
        #expect(server.state.metrics.fastGets.load(ordering: .relaxed) == 1)
    }

    /// Pipelined requests in one write, fast and routed mixed: the answers come back in request order.
    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let db = Database.inMemory()
        _ = try await db.put("a", "A")
        _ = try await db.put("b", "B")
        let server = try makeServer(db)
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            let paths = ["/v1/kv/a", "/v1/kv/missing", "/v1/kv/b", "/v1/kv/a", "/v1/kv/%zz", "/v1/kv/b"]
            var text = ""
            for (i, path) in paths.enumerated() {
                let close = i == paths.count - 1 ? "Connection: close\r\n" : ""
                text += "GET \(path) HTTP/1.1\r\nHost: x\r\nX-Request-Id: p\(i)\r\n\(close)\r\n"
            }
            let reply = try await RawHTTP.exchange(port: port, text)
            let ids = reply.components(separatedBy: "\r\n").filter { $0.lowercased().hasPrefix("x-request-id:") }
            #expect(ids == paths.indices.map { "X-Request-Id: p\($0)" }, "\(reply)")
            // A body is not followed by CRLF: the next status line starts right after it.
            let statuses = reply.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["200", "404", "200", "200", "400", "200"], "\(reply)")
        }
        #expect(server.state.metrics.fastGets.load(ordering: .relaxed) >= 1)
    }
}

/// One blocking exchange over a plain TCP socket (the server closes after the last request), on a thread of its own
/// so that no cooperative thread blocks.
enum RawHTTP {
    struct Failure: Error { var what: String }

    static func exchange(port: Int, _ request: String) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try blockingExchange(port: port, request) })
            }
            thread.start()
        }
    }

    static func blockingExchange(port: Int, _ request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(what: "socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(what: "connect") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw Failure(what: "send") }
            sent += n
        }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else { throw Failure(what: "recv (timeout?) after \(reply.count) bytes") }
            reply += chunk[..<n]
        }
        return String(decoding: reply, as: UTF8.self)
    }
}
