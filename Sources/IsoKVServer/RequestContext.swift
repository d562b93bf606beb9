import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The request context of every IsoKV route: Hummingbird's core storage plus the request id (from `X-Request-Id`
/// when the client sent a sane one, else generated), which is echoed in the response and becomes a problem's
/// `instance`.
public struct IsoKVRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID: String

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestID = ""
    }

    /// Hummingbird's own limit for its body helpers; IsoKV collects bodies itself against `ServerLimits`.
    public var maxUploadSize: Int { 2 << 20 }
}

/// The outermost middleware: assigns the request id, turns every error into a problem response (the only exit for
/// errors, through ``ErrorMapping``), adds `X-Request-Id`, and records the request metric by route template.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = IsoKVRequestContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let start = ContinuousClock.now
        var context = context
        context.requestID = Self.requestID(from: request.headers)
        // Copying the logger's metadata costs an allocation per request: only when something below logs.
        if context.logger.logLevel <= .debug {
            context.logger[metadataKey: "request_id"] = .string(context.requestID)
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            let problem = ErrorMapping.serverError(from: error)
            if problem.code == .internalError {
                context.logger.error(
                    "unexpected error",
                    metadata: ["error": .string(String(describing: error)), "request_id": .string(context.requestID)])
            }
            response = ErrorMapping.response(for: problem, requestID: context.requestID)
        }
        response.headers[.xRequestID] = context.requestID
        let route = Self.routeTemplate(context.endpointPath)
        let elapsed = ContinuousClock.now - start
        metrics.recordRequest(
            route: route, method: request.method.rawValue, status: Int(response.status.code),
            nanoseconds: UInt64(max(0, elapsed.components.seconds)) * 1_000_000_000
                + UInt64(max(0, elapsed.components.attoseconds / 1_000_000_000)))
        return response
    }

    /// Catch-all captures are reported with the name they stand for, so keys never become label values.
    static func routeTemplate(_ endpoint: String?) -> String {
        guard let endpoint else { return "unmatched" }
        if endpoint == "NotFound" { return "unmatched" }
        // Every catch-all is the last segment; this runs per request, so no Foundation string search.
        if endpoint.hasSuffix("/**") { return String(endpoint.dropLast(2)) + "{key}" }
        return endpoint
    }

    /// The client's request id when it is 1–128 visible ASCII characters, else a fresh one (``RequestIDs``).
    static func requestID(from headers: HTTPFields) -> String {
        if let given = headers[.xRequestID] ?? headers[.requestID], (1...128).contains(given.utf8.count),
            given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        {
            return given
        }
        return RequestIDs.next()
    }
}

/// Fresh request ids, `req-<16 hex digits>-<hex counter>`: a random prefix drawn once per process, then a counter.
/// Unique within a process and, with overwhelming probability, across restarts; they are labels for logs and
/// problem documents, not secrets (transaction ids, which are capabilities, stay fully random). Drawing 16 random
/// bytes and base64-encoding them per request took a sixth of the server's CPU on GET.
enum RequestIDs {
    private static let prefix: String = {
        let hex = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return "req-" + String(repeating: "0", count: 16 - hex.count) + hex + "-"
    }()
    private static let counter = Atomic<UInt64>(0)

    static func next() -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue
        return prefix + String(n, radix: 16)
    }

    /// Writes the next id into `buffer` (the GET fast path: no `String` on the heap per request — the counter's
    /// hex digits are a small, inline string — and the same format as ``next()``).
    static func writeNext(into buffer: inout ByteBuffer) {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue
        buffer.writeString(prefix)
        buffer.writeString(String(n, radix: 16))
    }
}

/// Bearer token authentication for every route but `/healthz` and `/readyz`. The comparison takes the same time
/// whatever the token's content (it depends on lengths only). Missing or wrong: 401 `28000` with
/// `WWW-Authenticate: Bearer`.
struct BearerAuthMiddleware: RouterMiddleware {
    typealias Context = IsoKVRequestContext
    let token: [UInt8]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let path = request.uri.path
        if path == "/healthz" || path == "/readyz" { return try await next(request, context) }
        guard let header = request.headers[.authorization] else {
            throw ServerError(.invalidAuthorization, "missing Authorization: Bearer token")
        }
        let prefix = "bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix else {
            throw ServerError(.invalidAuthorization, "the Authorization header is not a Bearer token")
        }
        guard Self.accepts(header, token: token) else {
            throw ServerError(.invalidAuthorization, "invalid bearer token")
        }
        return try await next(request, context)
    }

    /// True when `header` is `Bearer <token>` (scheme case-insensitive), compared in constant time.
    static func accepts(_ header: String, token: [UInt8]) -> Bool {
        let prefix = "bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix else {
            return false
        }
        return constantTimeEqual(Array(header.utf8.dropFirst(prefix.utf8.count)), token)
    }

    /// Equal contents and lengths, comparing every byte of the longer input whatever differs first.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count) | (a.count == b.count ? 0 : 1)
        let n = max(a.count, b.count)
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            diff |= x ^ y
        }
        return diff == 0
    }
}

extension HTTPField.Name {
    static let xRequestID = HTTPField.Name("X-Request-Id")!
    static let requestID = HTTPField.Name("Request-Id")!
    static let isokvRevision = HTTPField.Name("IsoKV-Revision")!
    static let xContentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
}
