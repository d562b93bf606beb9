import Foundation
import Hummingbird
import HummingbirdCore
import IsoKVCore
import IsoKVSync
import Logging
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

    /// The key of `get` (a request ``RawRequestHead/parse(_:)`` found to be a plain `GET /v1/kv/{key}`) when the
    /// fast path answers it exactly as the router would: a valid token when one is configured, and a key that
    /// decodes and passes the limits and the reserved-prefix check. Nil: the router handles it (and answers the
    /// 401 or 400 itself).
    func key(of get: RawGet, in head: UnsafeRawBufferPointer) -> Bytes? {
        if let token {
            guard let range = get.authorization,
                BearerAuthMiddleware.accepts(String(decoding: head[range], as: UTF8.self), token: token)
            else { return nil }
        }
        guard let key = try? KeyText.decodePath(utf8: UnsafeRawBufferPointer(rebasing: head[get.key])),
            key.count <= state.limits.maxKeyBytes,
            (try? RequestReader.check(key: key, limits: state.limits)) != nil
        else { return nil }
        return key
    }

    /// The client's request id as ``ProblemMiddleware/requestID(from:)`` takes it: `X-Request-Id` (else
    /// `Request-Id`) when it is 1–128 visible ASCII characters, else a fresh one.
    static func requestID(_ given: Range<Int>?, in head: UnsafeRawBufferPointer) -> String? {
        guard let given, (1...128).contains(given.count), head[given].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return nil
        }
        return String(decoding: head[given], as: UTF8.self)
    }

    /// The whole response the router's GET route, ``ProblemMiddleware`` and Hummingbird write for a present key,
    /// as one buffer: the status line, the headers in the same order and spelling (`IsoKV-Revision`, `ETag`,
    /// `Content-Type`, `X-Content-Type-Options`, `Content-Length`, `X-Request-Id`, `Date`, `Server`), the value.
    func response(_ current: VersionedValue, requestID: String?, allocator: ByteBufferAllocator) -> ByteBuffer {
        state.observe(current.version)
        let revision = state.revision
        let date = dates.now
        var out = allocator.buffer(
            capacity: 280 + (requestID?.utf8.count ?? 0) + serverName.utf8.count + current.value.count)
        out.writeStaticString("HTTP/1.1 200 OK\r\nIsoKV-Revision: ")
        out.writeDecimal(revision)
        out.writeStaticString("\r\nETag: \"")
        out.writeDecimal(current.version)
        out.writeStaticString("\"\r\nContent-Type: application/octet-stream\r\nX-Content-Type-Options: nosniff\r\n")
        out.writeStaticString("Content-Length: ")
        out.writeDecimal(UInt64(current.value.count))
        out.writeStaticString("\r\nX-Request-Id: ")
        if let requestID { out.writeString(requestID) } else { RequestIDs.writeNext(into: &out) }
        out.writeStaticString("\r\nDate: ")
        out.writeString(date)
        out.writeStaticString("\r\nServer: ")
        out.writeString(serverName)
        out.writeStaticString("\r\n\r\n")
        _ = current.value.withUnsafeBytes { out.writeBytes($0) }  // (no array copy of a shared value)
        return out
    }
}

extension ByteBuffer {
    /// `n` in decimal ASCII, without a `String`.
    mutating func writeDecimal(_ n: UInt64) {
        var count = 1
        var rest = n
        while rest >= 10 {
            rest /= 10
            count += 1
        }
        writeWithUnsafeMutableBytes(minimumWritableBytes: count) { p in
            var v = n
            for k in stride(from: count - 1, through: 0, by: -1) {
                p[k] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            }
            return count
        }
    }
}

/// A plain `GET /v1/kv/{key}` head (offsets into the bytes ``RawRequestHead/parse(_:)`` read).
struct RawGet: Equatable {
    /// Bytes of the head, up to and including its empty line.
    var headLength: Int
    /// The percent-encoded key: the request target after `/v1/kv/`.
    var key: Range<Int>
    /// The value of `X-Request-Id`, else of `Request-Id` (trimmed), when present.
    var requestID: Range<Int>?
    /// The value of `Authorization` (trimmed), when present.
    var authorization: Range<Int>?
}

/// What a connection's unparsed bytes start with, read strictly by RFC 9112 (``parse(_:)``).
enum RawRequestHead: Equatable {
    /// No complete head yet (and fewer than ``maxHead`` bytes): wait for more.
    case incomplete
    /// Something the fast path does not frame itself: a `Transfer-Encoding`, a `Connection` other than
    /// `keep-alive`, `Upgrade`, `CONNECT`, a version other than HTTP/1.1, a malformed or duplicate `Content-Length`, a
    /// malformed line, bytes outside visible ASCII, a head longer than ``maxHead``. From here on the connection's
    /// bytes all go to NIO's decoder.
    case unframeable
    /// A well-framed request for the router: its head and `Content-Length` bytes of body.
    case routed(headLength: Int, bodyLength: Int)
    /// A plain `GET /v1/kv/{key}` without a body, preconditions, `Expect`, `TE`, `Trailer`, `Accept: …json`, or
    /// a duplicate of a header the server reads (`Accept`, `Authorization`, `X-Request-Id`, `Request-Id`, `Host`).
    case get(RawGet)

    static let maxHead = 8192

    /// Reads the head at the start of `p`.
    static func parse(_ p: UnsafeRawBufferPointer) -> RawRequestHead {
        // The head ends at the first empty line.
        var end = -1
        var i = 3
        let n = p.count
        while i < n {
            if p[i] == lf {
                if p[i - 1] == cr && p[i - 2] == lf && p[i - 3] == cr {
                    end = i + 1
                    break
                }
                i += 1
            } else {
                // A CR here can start the last CRLF; any other byte is in no empty line ending before i + 4.
                i += p[i] == cr ? 1 : 4
            }
        }
        guard end > 0 else { return n >= maxHead ? .unframeable : .incomplete }
        if end > maxHead { return .unframeable }

        // Request line: method SP request-target SP "HTTP/1.1" CRLF.
        i = 0
        while i < end, isTokenByte(p[i]) { i += 1 }
        let methodEnd = i
        guard methodEnd > 0, p[i] == sp else { return .unframeable }
        let isGet =
            methodEnd == 3 && p[0] == UInt8(ascii: "G") && p[1] == UInt8(ascii: "E") && p[2] == UInt8(ascii: "T")
        let isConnect = methodEnd == 7 && matches(p, 0..<7, "CONNECT")
        if isConnect { return .unframeable }
        i += 1
        let targetStart = i
        var plainTarget = true
        while i < end, p[i] > 0x20, p[i] < 0x7F {
            if !isPathByte(p[i]) { plainTarget = false }
            i += 1
        }
        let targetEnd = i
        guard targetEnd > targetStart, p[i] == sp, i + 11 <= end, matches(p, (i + 1)..<(i + 9), "HTTP/1.1"),
            p[i + 9] == cr, p[i + 10] == lf
        else { return .unframeable }
        i += 11

        let prefixLength = prefix.utf8CodeUnitCount
        var fast =
            isGet && plainTarget && targetEnd - targetStart > prefixLength
            && matches(p, targetStart..<(targetStart + prefixLength), prefix, exact: true)
        var contentLength: Int?
        var requestID: Range<Int>?, xRequestID: Range<Int>?, authorization: Range<Int>?
        var seenAccept = false, seenHost = false

        // Header lines: field-name ":" OWS field-value OWS CRLF, until the empty line.
        while !(p[i] == cr && p[i + 1] == lf) {
            let nameStart = i
            while i < end, isTokenByte(p[i]) { i += 1 }
            let name = nameStart..<i
            guard !name.isEmpty, p[i] == UInt8(ascii: ":") else { return .unframeable }
            i += 1
            while p[i] == sp || p[i] == tab { i += 1 }
            let valueStart = i
            var valueEnd = i
            while true {
                let c = p[i]
                if c == cr { break }
                guard c == sp || c == tab || (c > 0x20 && c < 0x7F) else { return .unframeable }
                i += 1
                if c != sp && c != tab { valueEnd = i }
            }
            guard p[i + 1] == lf else { return .unframeable }
            i += 2
            let value = valueStart..<valueEnd

            switch name.count {
            case 2 where matches(p, name, "te"): fast = false
            case 4 where matches(p, name, "host"):
                if seenHost { fast = false }
                seenHost = true
            case 6 where matches(p, name, "accept"):
                if seenAccept || contains(p, value, "json") { fast = false }
                seenAccept = true
            case 6 where matches(p, name, "expect"): fast = false
            case 7 where matches(p, name, "upgrade"): return .unframeable
            case 7 where matches(p, name, "trailer"): fast = false
            case 10 where matches(p, name, "connection"):
                guard value.count == 10, matches(p, value, "keep-alive") else { return .unframeable }
            case 10 where matches(p, name, "request-id"):
                if requestID != nil { fast = false }
                requestID = value
            case 12 where matches(p, name, "x-request-id"):
                if xRequestID != nil { fast = false }
                xRequestID = value
            case 13 where matches(p, name, "authorization"):
                if authorization != nil { fast = false }
                authorization = value
            case 14 where matches(p, name, "content-length"):
                guard contentLength == nil, (1...15).contains(value.count), p[value].allSatisfy(isDigit) else {
                    return .unframeable
                }
                contentLength = p[value].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
                if contentLength != 0 { fast = false }
            case 17 where matches(p, name, "transfer-encoding"): return .unframeable
            default:
                // Every `If-…` precondition goes to the router.
                if name.count > 3 && matches(p, nameStart..<(nameStart + 3), "if-") { fast = false }
            }
        }
        guard i + 2 == end else { return .unframeable }
        guard fast else { return .routed(headLength: end, bodyLength: contentLength ?? 0) }
        return .get(
            RawGet(
                headLength: end, key: (targetStart + prefixLength)..<targetEnd, requestID: xRequestID ?? requestID,
                authorization: authorization))
    }

    static let prefix: StaticString = "/v1/kv/"
    static let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n"), sp = UInt8(ascii: " "), tab = UInt8(ascii: "\t")

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default: false
        }
    }

    /// RFC 3986 `pchar` and `/` (no query, no fragment, nothing a parser might read otherwise).
    static func isPathByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "!"),
            UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="),
            UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "/"), UInt8(ascii: "%"):
            true
        default: false
        }
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// The bytes in `range` equal `text` (ASCII letters compared without case unless `exact`).
    static func matches(_ p: UnsafeRawBufferPointer, _ range: Range<Int>, _ text: StaticString, exact: Bool = false)
        -> Bool
    {
        guard range.count == text.utf8CodeUnitCount else { return false }
        return text.withUTF8Buffer { t in
            for k in 0..<t.count {
                let c = p[range.lowerBound + k]
                if c == t[k] { continue }
                let lower = c | 0x20
                if exact || lower != t[k] || lower < UInt8(ascii: "a") || lower > UInt8(ascii: "z") { return false }
            }
            return true
        }
    }

    /// `text` (lowercase) occurs in the bytes of `range`, ASCII case ignored.
    static func contains(_ p: UnsafeRawBufferPointer, _ range: Range<Int>, _ text: StaticString) -> Bool {
        let m = text.utf8CodeUnitCount
        guard range.count >= m else { return false }
        for start in range.lowerBound...(range.upperBound - m) where matches(p, start..<(start + m), text) {
            return true
        }
        return false
    }
}

/// The GET fast path: the first handler of a connection's pipeline, below NIO's HTTP/1 decoder. It reads the raw
/// inbound bytes; a complete plain `GET /v1/kv/{key}` (``RawRequestHead``, ``FastGetPath/key(of:in:)``) is read
/// from the store by a task that runs on this connection's event loop (``EventLoopTaskExecutor``), and a hit is
/// written from there as one preformatted buffer, past the HTTP codecs, Hummingbird's request loop, router,
/// middlewares and context. Every other request — and a miss, or an error — goes to the decoder as its exact bytes,
/// in order, so problems (404, 401, 22023…) and every other route have one implementation.
///
/// Framing: the decoder only ever receives whole requests (a head and its `Content-Length` body bytes, passed on
/// as they arrive), so it is at a message boundary whenever this handler reads a head. A request this handler
/// cannot frame with certainty (``RawRequestHead/unframeable``) switches the connection to passing everything on.
///
/// Order: HTTP/1.1 answers requests in order. A fast request is answered only when every request passed to the
/// router has been answered (`routed`, counted down by ``RoutedResponseCounter`` at each response `.end` the router
/// writes); until then its bytes wait here. While a fast read runs, inbound bytes wait too (the channel's `read`
/// is held once ``maxPending`` bytes wait), and so do errors and the quiesce event.
final class FastGetHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private enum Mode {
        /// At a request boundary: the next bytes are a head for ``RawRequestHead/parse(_:)``.
        case heads
        /// Passing on this many more body bytes of a routed request.
        case body(Int)
        /// Passing everything on from now (``RawRequestHead/unframeable``).
        case passthrough
    }

    private let path: FastGetPath
    private var executor: EventLoopTaskExecutor?
    private var context: ChannelHandlerContext?
    private var mode = Mode.heads
    /// Inbound bytes not yet parsed or passed on.
    private var pending = ByteBuffer()
    /// Requests passed to the router whose response has not been written yet.
    private var routed = 0
    /// The fast request whose store read is running: its head (passed on if the read misses) and request id.
    private var inFlight: (head: ByteBuffer, requestID: String?, started: ContinuousClock.Instant)?
    private var resumeScheduled = false
    private var readRequested = false
    /// Bytes passed on since the last `channelReadComplete` (one is then fired, so the request loop sees them).
    private var forwardedUnflushed = false
    private var wroteUnflushed = false
    private var heldError: (any Error)?
    private var heldQuiesce = false
    /// The client closed its sending side while requests still waited here: the event (which ends Hummingbird's
    /// request loop once it has answered what it has) waits until they are answered or passed on.
    private var heldInputClosed = false
    private var quiescing = false
    private var active = true

    static let maxPending = 64 * 1024

    init(path: FastGetPath) { self.path = path }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        executor = EventLoopTaskExecutor(loop: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if case .passthrough = mode, pending.readableBytes == 0 {
            forward(bytes, context: context)
            return
        }
        if pending.readableBytes == 0 {
            pending = bytes
        } else {
            pending.writeBuffer(&bytes)
        }
        process(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Only the request loop's handler acts on it (it delivers the parts read): when nothing was passed on
        // since the last one, the walk through the pipeline is skipped.
        if forwardedUnflushed {
            forwardedUnflushed = false
            context.fireChannelReadComplete()
        }
        if wroteUnflushed {
            wroteUnflushed = false
            context.flush()
        }
    }

    /// Parses and dispatches what `pending` holds until it needs more bytes, a fast read runs, or a fast request
    /// waits for the router's answers.
    private func process(context: ChannelHandlerContext) {
        while pending.readableBytes > 0 {
            switch mode {
            case .passthrough:
                forward(pending.readSlice(length: pending.readableBytes)!, context: context)
            case .body(let remaining):
                let n = min(remaining, pending.readableBytes)
                forward(pending.readSlice(length: n)!, context: context)
                mode = n == remaining ? .heads : .body(remaining - n)
            case .heads:
                guard inFlight == nil else { return }
                let (parsed, key, requestID) = pending.withUnsafeReadableBytes { p in
                    let parsed = RawRequestHead.parse(p)
                    guard case .get(let get) = parsed, !quiescing, let key = path.key(of: get, in: p) else {
                        return (parsed, Bytes?.none, String?.none)
                    }
                    return (parsed, key, FastGetPath.requestID(get.requestID, in: p))
                }
                switch parsed {
                case .incomplete:
                    return
                case .unframeable:
                    mode = .passthrough
                case .routed(let headLength, let bodyLength):
                    route(pending.readSlice(length: headLength)!, context: context)
                    if bodyLength > 0 { mode = .body(bodyLength) }
                case .get(let get):
                    guard let key else {
                        route(pending.readSlice(length: get.headLength)!, context: context)
                        continue
                    }
                    // Answered after every routed request before it.
                    guard routed == 0 else { return }
                    let head = pending.readSlice(length: get.headLength)!
                    start(key: key, head: head, requestID: requestID, context: context)
                }
            }
        }
        // Nothing waits: drop the storage (a new read brings its own buffer).
        pending = ByteBuffer()
    }

    private func route(_ head: ByteBuffer, context: ChannelHandlerContext) {
        routed += 1
        forward(head, context: context)
    }

    private func forward(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        forwardedUnflushed = true
        context.fireChannelRead(wrapInboundOut(bytes))
    }

    private func start(key: Bytes, head: ByteBuffer, requestID: String?, context: ChannelHandlerContext) {
        guard let executor else { return }
        inFlight = (head, requestID, ContinuousClock.now)
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let db = path.state.db
        Task(executorPreference: executor) {
            let result: Result<VersionedValue?, any Error>
            do { result = .success(try await db.get(key)) } catch { result = .failure(error) }
            if loop.inEventLoop {
                bound.value.finish(result)
            } else {
                loop.execute { bound.value.finish(result) }
            }
        }
    }

    private func finish(_ result: Result<VersionedValue?, any Error>) {
        guard let request = inFlight else { return }
        inFlight = nil
        guard active, let context else {
            pending = ByteBuffer()
            return
        }
        if case .success(let current?) = result {
            let response = path.response(
                current, requestID: request.requestID, allocator: context.channel.allocator)
            context.write(wrapOutboundOut(.byteBuffer(response)), promise: nil)
            wroteUnflushed = true
            path.recorder.record(since: request.started)
            path.state.metrics.fastGets.add(1, ordering: .relaxed)
        } else {
            // A miss or an error: the router answers it (the 404 problem, the error mapping), reading again.
            if case .failure(let error) = result { path.state.noteError(error) }
            route(request.head, context: context)
        }
        process(context: context)
        settle(context: context)
    }

    /// After work done outside a read cycle: flush what was written, let the request loop see what was passed
    /// on, deliver what was held, and resume reading.
    private func settle(context: ChannelHandlerContext) {
        if wroteUnflushed {
            wroteUnflushed = false
            context.flush()
        }
        if forwardedUnflushed {
            forwardedUnflushed = false
            context.fireChannelReadComplete()
        }
        guard inFlight == nil else { return }
        if let error = heldError {
            heldError = nil
            context.fireErrorCaught(error)
        }
        if heldQuiesce {
            heldQuiesce = false
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        if heldInputClosed, routed == 0 || pending.readableBytes == 0 {
            // What still waits can never complete (a cut-off head): the decoder gets it as it is.
            heldInputClosed = false
            if pending.readableBytes > 0 {
                forward(pending.readSlice(length: pending.readableBytes)!, context: context)
                pending = ByteBuffer()
                context.fireChannelReadComplete()
                forwardedUnflushed = false
            }
            mode = .passthrough
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
        if readRequested, pending.readableBytes < Self.maxPending {
            readRequested = false
            context.read()
        }
    }

    /// The router wrote the `.end` of a response (``RoutedResponseCounter``). When it was the last one a fast
    /// request waited for, that request is dispatched — on the next event-loop tick, not inside the router's write.
    func routerAnswered() {
        guard routed > 0 else { return }
        routed -= 1
        guard routed == 0, pending.readableBytes > 0, !resumeScheduled, let context else { return }
        resumeScheduled = true
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let handler = bound.value
            handler.resumeScheduled = false
            guard handler.active, let context = handler.context else { return }
            handler.process(context: context)
            handler.settle(context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if pending.readableBytes >= Self.maxPending { readRequested = true } else { context.read() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if inFlight != nil { heldError = error } else { context.fireErrorCaught(error) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(.inputClosed) = event as? ChannelEvent, inFlight != nil || pending.readableBytes > 0 {
            heldInputClosed = true
            if inFlight == nil { settle(context: context) }
            return
        }
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if inFlight != nil {
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

/// Counts the responses the router writes (their `.end`s) for ``FastGetHandler``; it sits after Hummingbird's
/// HTTP/1 codec (`additionalChannelHandlers`).
final class RoutedResponseCounter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    var fast: FastGetHandler?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd = if case .end = unwrapOutboundIn(data) { true } else { false }
        context.write(data, promise: promise)
        if isEnd { fast?.routerAnswered() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fast = nil
    }
}

/// Hummingbird's HTTP/1 child channel with the GET fast path: ``FastGetHandler`` in front of NIO's decoder and
/// ``RoutedResponseCounter`` after the codec; the request loop is Hummingbird's.
struct FastGetHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel
    let path: FastGetPath

    init(responder: @escaping HTTPChannelHandler.Responder, path: FastGetPath) {
        self.inner = HTTP1Channel(
            responder: responder, configuration: .init(additionalChannelHandlers: [RoutedResponseCounter()]))
        self.path = path
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let path = path
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let fast = FastGetHandler(path: path)
            try operations.handler(type: RoutedResponseCounter.self).fast = fast
            try operations.addHandler(fast, position: .first)
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
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
