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

    // MARK: below the codec: raw bytes, byte-identical answers

    /// The same raw byte stream, sent in `chunks`, to a server with the fast path and to one without (same store
    /// contents): the replies must be byte-identical but for the `Date` lines. Returns the fast path's reply and
    /// how many answers it wrote itself.
    static func rawCompare(_ chunks: [String], token: String? = nil, halfClose: Bool = false) async throws -> (
        String, Int
    ) {
        func run(fastPath: Bool) async throws -> (String, Int) {
            let db = Database.inMemory()
            _ = try await db.put("a", "value of a")
            _ = try await db.put("b", Bytes([0, 1, 2, 255]))
            let server = try makeServer(db) {
                $0.fastPath = fastPath
                $0.token = token
            }
            let reply = try await server.application.test(.live) { client in
                try await RawHTTP.exchange(port: try #require(client.port), chunks: chunks, halfClose: halfClose)
            }
            return (reply, server.state.metrics.fastGets.load(ordering: .relaxed))
        }
        let (viaFast, fastCount) = try await run(fastPath: true)
        let (viaRouter, routerCount) = try await run(fastPath: false)
        #expect(routerCount == 0)
        // Generated request ids come from one counter per process: the two servers' differ.
        func withoutDates(_ text: String) -> String {
            text.components(separatedBy: "\r\n").filter { !$0.hasPrefix("Date: ") }.joined(separator: "\r\n")
                .replacing(/req-[0-9a-f]{16}-[0-9a-f]+/, with: "req-*")
        }
        #expect(withoutDates(viaFast) == withoutDates(viaRouter), "fast:\n\(viaFast)\nrouter:\n\(viaRouter)")
        return (viaFast, fastCount)
    }

    static func statuses(_ reply: String) -> [String] {
        reply.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
    }

    static func get(_ path: String, _ id: String, _ extra: String = "") -> String {
        "GET \(path) HTTP/1.1\r\nHost: x\r\nX-Request-Id: \(id)\r\n\(extra)\r\n"
    }

    /// A request split across reads (inside the request line, inside a header, between CR and LF), and two
    /// requests in one read with the second cut short: each is answered once it is complete, byte for byte as the
    /// router answers it.
    @Test func partialRequestsAcrossReads() async throws {
        let chunks = [
            "GET /v1/kv/a HT", "TP/1.1\r\nHost: x\r\nX-Request-Id: s1\r", "\n\r\nGET /v1/kv/b HTTP/1.1\r\nX-Req",
            "uest-Id: s2\r\n\r", "\n" + Self.get("/v1/kv/a", "s3", "Connection: close\r\n")
        ]
        let (reply, fast) = try await Self.rawCompare(chunks)
        #expect(Self.statuses(reply) == ["200", "200", "200"], "\(reply)")
        #expect(reply.contains("X-Request-Id: s1\r\n") && reply.contains("X-Request-Id: s2\r\n"))
        #expect(fast == 2)  // the last one has `Connection: close`: the router answers and closes
    }

    /// Pipelined in one write: fast hits, a PUT whose body looks like a GET (it must be read as a body, not
    /// answered), a GET of the key just written (answered only after the PUT), a HEAD after fast answers (NIO's
    /// encoder must frame it as a HEAD's), a miss and a conditional GET (routed), in request order.
    @Test func pipelinedFastAndRoutedRequests() async throws {
        let body = "GET /v1/kv/a HTTP/1.1\r\n\r\n"
        let put =
            "PUT /v1/kv/c HTTP/1.1\r\nHost: x\r\nX-Request-Id: p1\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        let requests = [
            Self.get("/v1/kv/a", "p0"), put, Self.get("/v1/kv/c", "p2"),
            "HEAD /v1/kv/a HTTP/1.1\r\nHost: x\r\nX-Request-Id: p3\r\n\r\n", Self.get("/v1/kv/b", "p4"),
            Self.get("/v1/kv/missing", "p5"), Self.get("/v1/kv/a", "p6", "If-None-Match: \"1\"\r\n"),
            Self.get("/v1/kv/a", "p7"), Self.get("/v1/kv/a", "p8", "Connection: close\r\n")
        ]
        let (reply, fast) = try await Self.rawCompare([requests.joined()])
        #expect(Self.statuses(reply) == ["200", "201", "200", "200", "200", "404", "304", "200", "200"], "\(reply)")
        let ids = reply.components(separatedBy: "\r\n").filter { $0.hasPrefix("X-Request-Id: ") }
        #expect(ids == (0...8).map { "X-Request-Id: p\($0)" })
        #expect(reply.contains("\r\n\r\n" + body))  // GET c returned the PUT's body
        #expect(fast == 4)  // p0, p2, p4, p7

        // The same bytes cut at every 37th byte: the PUT's body arrives in pieces.
        let text = requests.joined()
        var pieces: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            pieces.append(String(rest.prefix(37)))
            rest = rest.dropFirst(37)
        }
        let (split, splitFast) = try await Self.rawCompare(pieces)
        #expect(Self.statuses(split) == Self.statuses(reply))
        #expect(splitFast == 4)
    }

    /// What the fast path must not answer goes to the router with its bytes intact: a chunked body (after which
    /// the connection is passed through whole), HTTP/1.0, `Expect`, a duplicate request id, a folded header line,
    /// a `Connection: close`, a wrong token. Lowercase header names are still fast.
    @Test func refusedRequestsReachTheRouterIntact() async throws {
        let chunked =
            "PUT /v1/kv/d HTTP/1.1\r\nHost: x\r\nX-Request-Id: c1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5\r\nhello\r\n0\r\n\r\n"
        var (reply, fast) = try await Self.rawCompare([
            chunked + Self.get("/v1/kv/a", "c2") + Self.get("/v1/kv/d", "c3", "Connection: close\r\n")
        ])
        #expect(Self.statuses(reply) == ["201", "200", "200"], "\(reply)")
        #expect(reply.hasSuffix("hello"))
        #expect(fast == 0)

        (reply, fast) = try await Self.rawCompare([
            "GET /v1/kv/a HTTP/1.0\r\nX-Request-Id: r1\r\nConnection: close\r\n\r\n"
        ])
        #expect(reply.hasPrefix("HTTP/1.1 200") || reply.hasPrefix("HTTP/1.0 200"), "\(reply)")
        #expect(fast == 0)

        for extra in [
            "Expect: 100-continue\r\n", "X-Request-Id: twice\r\n", "X-Folded: a\r\n b\r\n",
            "Accept: text/plain, Application/JSON\r\n", "If-Modified-Since: Wed, 02 Dec 2026 05:25:37 GMT\r\n"
        ] {
            (reply, fast) = try await Self.rawCompare([
                Self.get("/v1/kv/a", "r2", extra) + Self.get("/v1/kv/a", "r3", "Connection: close\r\n")
            ])
            #expect(fast == 0, "\(extra)")
        }

        (reply, fast) = try await Self.rawCompare([
            "GET /v1/kv/a HTTP/1.1\r\nx-request-id: r4\r\nconnection: Keep-Alive\r\nhost: x\r\n\r\n"
                + Self.get("/v1/kv/a", "r5", "Connection: close\r\n")
        ])
        #expect(Self.statuses(reply) == ["200", "200"])
        #expect(fast == 1)

        let auth = "Authorization: Bearer \(Self.token)\r\n"
        (reply, fast) = try await Self.rawCompare(
            [
                Self.get("/v1/kv/a", "t1", auth) + Self.get("/v1/kv/a", "t2", "Authorization: Bearer nope\r\n")
                    + Self.get("/v1/kv/a", "t3", auth + auth)
                    + Self.get("/v1/kv/a", "t4", auth + "Connection: close\r\n")
            ], token: Self.token)
        #expect(Self.statuses(reply) == ["200", "401", "401", "200"], "\(reply)")
        #expect(fast == 1)
    }

    /// The client sends pipelined requests and closes its sending side at once: every request is still answered,
    /// in order, before the server closes (the input-closed event waits for the fast answers).
    @Test func halfClosedClientGetsEveryAnswer() async throws {
        let requests = [
            Self.get("/v1/kv/a", "h0"), Self.get("/v1/kv/missing", "h1"), Self.get("/v1/kv/b", "h2"),
            Self.get("/v1/kv/a", "h3")
        ]
        let (reply, fast) = try await Self.rawCompare([requests.joined()], halfClose: true)
        #expect(Self.statuses(reply) == ["200", "404", "200", "200"], "\(reply)")
        #expect(fast == 3)
        // A head cut off by the close reaches the decoder as it is (both servers answer the same).
        let (cut, _) = try await Self.rawCompare(
            [Self.get("/v1/kv/a", "h4") + "GET /v1/kv/b HTTP/1.1\r\nHo"], halfClose: true)
        #expect(Self.statuses(cut).first == "200", "\(cut)")
    }

    /// The head parser on its own: what is a fast GET, what is framed for the router, what is passed through.
    @Test func rawHeadClassification() {
        func parse(_ text: String) -> RawRequestHead {
            Array(text.utf8).withUnsafeBytes { RawRequestHead.parse($0) }
        }
        let plain = "GET /v1/kv/a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n"
        #expect(parse(plain) == .get(RawGet(headLength: plain.utf8.count, key: 11..<16)))
        let ids = "GET /v1/kv/k HTTP/1.1\r\nRequest-Id: r\r\nX-REQUEST-ID:  xid \r\nAuthorization: Bearer t\r\n\r\n"
        guard case .get(let get) = parse(ids) else {
            Issue.record("not a fast GET")
            return
        }
        let bytes = Array(ids.utf8)
        #expect(String(decoding: bytes[get.requestID!], as: UTF8.self) == "xid")
        #expect(String(decoding: bytes[get.authorization!], as: UTF8.self) == "Bearer t")
        for partial in ["", "GET", "GET /v1/kv/a HTTP/1.1\r\n", "GET /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r"] {
            #expect(parse(partial) == .incomplete, "\(partial)")
        }
        let routed: [(String, Int)] = [
            ("PUT /v1/kv/a HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 5), ("GET /v1/kv/a?x=1 HTTP/1.1\r\n\r\n", 0),
            ("GET /v1/kv/a#f HTTP/1.1\r\n\r\n", 0), ("GET /v1/kv/ HTTP/1.1\r\n\r\n", 0),
            ("GET /v1/kva HTTP/1.1\r\n\r\n", 0),
            ("HEAD /v1/kv/a HTTP/1.1\r\n\r\n", 0), ("get /v1/kv/a HTTP/1.1\r\n\r\n", 0),
            ("GET /v1/kv/a HTTP/1.1\r\nContent-Length: 3\r\n\r\n", 3),
            ("GET /v1/kv/a HTTP/1.1\r\nIf-Match: *\r\n\r\n", 0),
            ("GET /v1/kv/a HTTP/1.1\r\nexpect: 100-continue\r\n\r\n", 0),
            ("GET /v1/kv/a HTTP/1.1\r\nAccept: application/json\r\n\r\n", 0),
            ("GET /v1/kv/a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 0), ("GET /v1/kv/a\"b HTTP/1.1\r\n\r\n", 0),
            ("GET /v1/kv/a HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", 0)
        ]
        for (text, body) in routed {
            #expect(parse(text) == .routed(headLength: text.utf8.count, bodyLength: body), "\(text)")
        }
        for text in [
            "GET /v1/kv/a HTTP/1.0\r\n\r\n", "GET /v1/kv/a HTTP/1.1\nHost: x\r\n\r\n",
            "GET /v1/kv/a HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            "GET /v1/kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /v1/kv/a HTTP/1.1\r\nConnection: close\r\n\r\n",
            "GET /v1/kv/a HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", "CONNECT x:1 HTTP/1.1\r\n\r\n",
            "PUT /v1/kv/a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "PUT /v1/kv/a HTTP/1.1\r\nContent-Length: +1\r\n\r\n", "GET /v1/kv/a HTTP/1.1\r\nX : y\r\n\r\n",
            "GET /v1/kv/a HTTP/1.1\r\nX: \u{7F}\r\n\r\n", "GET /v1/kv/\u{E9} HTTP/1.1\r\n\r\n",
            "\r\nGET /v1/kv/a HTTP/1.1\r\n\r\n",
            "GET /v1/kv/a HTTP/1.1\r\nX: " + String(repeating: "y", count: 9000)
        ] {
            #expect(parse(text) == .unframeable, "\(text.prefix(60))")
        }
    }
}

/// One blocking exchange over a plain TCP socket (the server closes after the last request), on a thread of its own
/// so that no cooperative thread blocks.
enum RawHTTP {
    struct Failure: Error { var what: String }

    static func exchange(port: Int, _ request: String) async throws -> String {
        try await exchange(port: port, chunks: [request])
    }

    /// Sends `chunks` one by one, `pause` apart (so that the server reads them separately), then reads until the
    /// server closes.
    /// With `halfClose`, the client shuts down its sending side after the last chunk.
    static func exchange(
        port: Int, chunks: [String], pause: Duration = .milliseconds(50), halfClose: Bool = false
    ) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result { try blockingExchange(port: port, chunks, pause: pause, halfClose: halfClose) })
            }
            thread.start()
        }
    }

    static func blockingExchange(port: Int, _ chunks: [String], pause: Duration, halfClose: Bool) throws -> String {
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
        var nodelay: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &nodelay, socklen_t(MemoryLayout<Int32>.size))
        for (index, chunk) in chunks.enumerated() {
            if index > 0 { Thread.sleep(forTimeInterval: Double(pause.components.attoseconds) / 1e18) }
            let bytes = Array(chunk.utf8)
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { throw Failure(what: "send") }
                sent += n
            }
        }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
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
