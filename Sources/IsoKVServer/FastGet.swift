import Foundation
import HTTPTypes
import IsoKVCore
import IsoKVSync
import NIOCore
import NIOHTTPTypes

/// What the GET fast path shares across connections: the state, the token, the cached metric handles and the
/// `Date` header (DESIGN.md, "GET fast path").
final class FastGetPath: Sendable {
    let state: ServerState
    let token: [UInt8]?
    let serverName: String
    let recorder: ServerMetrics.RequestRecorder
    let dates = HTTPDateCache()

    init(state: ServerState) {
        self.state = state
        self.token = state.configuration.token.map { Array($0.utf8) }
        self.serverName = state.configuration.serverName
        self.recorder = state.metrics.recorder(route: "/v1/kv/{key}", method: "GET", status: 200)
    }

    static let prefix = "/v1/kv/"

    /// The key when `head` is a request the fast path answers exactly as the router would: `GET /v1/kv/{key}`
    /// without a query, preconditions, `Accept: …json`, body, `Expect`, or `Connection` other than `keep-alive`, with a valid token
    /// when one is configured, and a key that decodes and passes the limits. Nil: the router handles it.
    func eligibleKey(_ head: HTTPRequest) -> Bytes? {
        guard head.method == .get, let path = head.path, path.hasPrefix(Self.prefix) else { return nil }
        let raw = path.utf8.dropFirst(Self.prefix.utf8.count)
        guard !raw.isEmpty, !raw.contains(UInt8(ascii: "?")), !raw.contains(UInt8(ascii: "#")) else { return nil }
        let h = head.headerFields
        // `Connection: close` (and upgrades) go to the router, which closes the connection after its answer.
        if let connection = h[.connection], connection.lowercased() != "keep-alive" { return nil }
        guard h[.ifMatch] == nil, h[.ifNoneMatch] == nil, h[.expect] == nil,
            h[.transferEncoding] == nil, h[.contentLength] == nil || h[.contentLength] == "0"
        else { return nil }
        if let accept = h[.accept], accept.contains("json") { return nil }
        if let token {
            guard let header = h[.authorization], BearerAuthMiddleware.accepts(header, token: token) else {
                return nil
            }
        }
        guard let key = try? KeyText.decodePath(Substring(raw)), key.count <= state.limits.maxKeyBytes,
            (try? RequestReader.check(key: key, limits: state.limits)) != nil
        else { return nil }
        return key
    }

    /// The response the router's GET route and ``ProblemMiddleware`` write for a present key, headers in the same
    /// order, plus the `Date` and `Server` headers Hummingbird adds.
    func responseHead(_ current: VersionedValue, requestID: String) -> HTTPResponse {
        state.observe(current.version)
        var headers = HTTPFields()
        headers.reserveCapacity(8)
        headers[.isokvRevision] = String(state.revision)
        headers[.eTag] = ETag.format(current.version)
        headers[.contentType] = "application/octet-stream"
        headers[.xContentTypeOptions] = "nosniff"
        headers[.contentLength] = String(current.value.count)
        headers[.xRequestID] = requestID
        headers[.date] = dates.now
        headers[.server] = serverName
        return HTTPResponse(status: .ok, headerFields: headers)
    }
}

/// The GET fast path: a channel handler between Hummingbird's HTTP/1 codec and its request loop. A plain
/// `GET /v1/kv/{key}` (``FastGetPath/eligibleKey(_:)``) is read from the store by a task that runs on this
/// connection's event loop (``EventLoopTaskExecutor``), and a hit is written from there, without Hummingbird's
/// per-request async iteration, router, middlewares and context. A miss, an error, and every other request go to
/// the router unchanged, so problems (404, 401, 22023…) and every other route have one implementation.
///
/// Order: HTTP/1.1 answers requests in order. The handler answers a request itself only when no request it passed
/// to the router is still unanswered (`routed`, counted down by each response `.end` the router writes through
/// it); while a fast read runs, it queues what arrives (holding the channel's `read` once `maxQueued` parts
/// wait), errors and the quiesce event.
final class FastGetHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let path: FastGetPath
    private var executor: EventLoopTaskExecutor?
    /// Requests passed to the router whose response has not been written yet.
    private var routed = 0
    /// The current request is a fast one whose `.end` has not been read yet (its parts are dropped).
    private var swallowing = false
    /// A fast read is running: inbound parts wait in `queued`.
    private var reading = false
    private var queued = CircularBuffer<HTTPRequestPart>()
    private var readRequested = false
    /// Parts passed on since the last `channelReadComplete` (finish then fires one, so the router sees them).
    private var forwardedUnflushed = false
    private var heldError: (any Error)?
    private var heldQuiesce = false
    private var quiescing = false
    private var active = true

    init(path: FastGetPath) { self.path = path }

    func handlerAdded(context: ChannelHandlerContext) {
        executor = EventLoopTaskExecutor(loop: context.eventLoop)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if reading {
            queued.append(part)
            return
        }
        handle(part, context: context)
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            if routed == 0, !quiescing, let executor, let key = path.eligibleKey(head) {
                swallowing = true
                start(head, key: key, executor: executor, context: context)
            } else {
                route(head, context: context)
            }
        case .body, .end:
            if swallowing {
                if case .end = part { swallowing = false }
                return
            }
            forward(part, context: context)
        }
    }

    private func route(_ head: HTTPRequest, context: ChannelHandlerContext) {
        routed += 1
        forward(.head(head), context: context)
    }

    private func forward(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        forwardedUnflushed = true
        context.fireChannelRead(wrapInboundOut(part))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        forwardedUnflushed = false
        context.fireChannelReadComplete()
    }

    private func start(
        _ head: HTTPRequest, key: Bytes, executor: EventLoopTaskExecutor, context: ChannelHandlerContext
    ) {
        reading = true
        let started = ContinuousClock.now
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let db = path.state.db
        Task(executorPreference: executor) {
            let result: Result<VersionedValue?, any Error>
            do { result = .success(try await db.get(key)) } catch { result = .failure(error) }
            if loop.inEventLoop {
                bound.value.0.finish(head, result, started: started, context: bound.value.1)
            } else {
                loop.execute { bound.value.0.finish(head, result, started: started, context: bound.value.1) }
            }
        }
    }

    private func finish(
        _ head: HTTPRequest, _ result: Result<VersionedValue?, any Error>, started: ContinuousClock.Instant,
        context: ChannelHandlerContext
    ) {
        reading = false
        guard active else {
            queued.removeAll()
            return
        }
        if case .success(let current?) = result {
            let requestID = ProblemMiddleware.requestID(from: head.headerFields)
            let response = path.responseHead(current, requestID: requestID)
            var body = context.channel.allocator.buffer(capacity: current.value.count)
            body.writeBytes(current.value.bytes)
            context.write(wrapOutboundOut(.head(response)), promise: nil)
            context.write(wrapOutboundOut(.body(body)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            path.recorder.record(since: started)
            path.state.metrics.fastGets.add(1, ordering: .relaxed)
        } else {
            // A miss or an error: the router answers it (the 404 problem, the error mapping), reading again.
            if case .failure(let error) = result { path.state.noteError(error) }
            swallowing = false
            route(head, context: context)
        }
        while !reading, let part = queued.popFirst() { handle(part, context: context) }
        if forwardedUnflushed { channelReadComplete(context: context) }
        guard !reading else { return }
        if let error = heldError {
            heldError = nil
            context.fireErrorCaught(error)
        }
        if heldQuiesce {
            heldQuiesce = false
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        if readRequested {
            readRequested = false
            context.read()
        }
    }

    /// Reads go on while a fast read runs (it ends within the event loop's next tick), until `maxQueued` parts
    /// wait: then the channel's next read waits for it.
    func read(context: ChannelHandlerContext) {
        if reading && queued.count >= Self.maxQueued { readRequested = true } else { context.read() }
    }

    static let maxQueued = 64

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), routed > 0 { routed -= 1 }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if reading { heldError = error } else { context.fireErrorCaught(error) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if reading {
                heldQuiesce = true
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        active = false
        context.fireChannelInactive()
    }
}

/// Runs a task's jobs on one NIO event loop: a fast GET's read starts and, when the store does not suspend (the
/// engine's point read never does), ends on the connection's own thread, so no thread switch per request.
final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// The `Date` header's value (RFC 9110 IMF-fixdate, `Wed, 02 Dec 2026 05:25:37 GMT`), formatted once per second.
final class HTTPDateCache: Sendable {
    private let cached = Locked<(second: Int, text: String)>((-1, ""))

    var now: String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let second = ts.tv_sec
        return cached.withLock { c in
            if c.second == second { return c.text }
            c = (second, Self.format(second))
            return c.text
        }
    }

    static func format(_ second: Int) -> String {
        var t = time_t(second)
        var tm = tm()
        gmtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
    }
}
