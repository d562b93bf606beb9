import HTTPTypes
import Hummingbird
import HummingbirdCore
import IsoKVCore
import Logging
import NIOCore
import ServiceLifecycle

/// Builds the IsoKV HTTP application over `database` (any `KeyValueStore`; see ``ServerBackend`` for what else the
/// server uses when the store offers it): routes, middlewares and the `StoreService` that reaps idle transactions
/// and, at shutdown, rolls back open transactions and closes the store (when `closeDatabase`).
///
/// ```swift
/// let app = try buildApplication(configuration: ServerConfiguration(port: 0), database: Database.inMemory())
/// try await app.test(.router) { client in … }
/// ```
/// `runServer(configuration:database:logger:)` runs it with the full shutdown sequence (readiness first).
public func buildApplication(
    configuration: ServerConfiguration, database: any KeyValueStore, closeDatabase: Bool = true,
    logger: Logger? = nil
) throws -> some ApplicationProtocol {
    try IsoKVServer(configuration: configuration, database: database, closeDatabase: closeDatabase, logger: logger)
        .application
}

/// The server: its shared state, the application, and the services of its shutdown sequence.
public struct IsoKVServer: Sendable {
    let state: ServerState
    let logger: Logger
    public let application: Application<RouterResponder<IsoKVRequestContext>>

    /// `onRunning` is called with the bound port once the server listens. `database` is any store; when it is a
    /// ``ServerBackend`` the server also uses its optional capabilities (closing, metrics, fail-stop).
    ///
    /// ```swift
    /// let server = try IsoKVServer(configuration: ServerConfiguration(port: 7070), database: Database.inMemory())
    /// try await server.run()
    /// ```
    public init(
        configuration: ServerConfiguration, database: any KeyValueStore, closeDatabase: Bool = true,
        logger: Logger? = nil, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws {
        let logger = logger ?? Logger(label: "isokv")
        let state = ServerState(db: database, configuration: configuration)
        self.state = state
        self.logger = logger
        let router = Router(context: IsoKVRequestContext.self, options: [.autoGenerateHeadEndpoints])
        router.add(middleware: ProblemMiddleware(metrics: state.metrics))
        if let token = configuration.token {
            guard !token.isEmpty else { throw ServerError.invalid("the token must not be empty") }
            router.add(middleware: BearerAuthMiddleware(token: Array(token.utf8)))
        }
        HealthRoutes(state: state).register(on: router)
        KVRoutes(state: state).register(on: router)
        BatchRoutes(state: state).register(on: router)
        TransactionRoutes(state: state).register(on: router)
        QueueRoutes(state: state).register(on: router)
        let appConfiguration = ApplicationConfiguration(
            address: .hostname(configuration.host, port: configuration.port), serverName: configuration.serverName)
        let fastPath = configuration.fastPath ? FastGetPath(state: state) : nil
        application = Application(
            router: router,
            server: fastPath.map { path in
                HTTPServerBuilder { responder in FastGetHTTP1Channel(responder: responder, path: path) }
            } ?? .http1(),
            configuration: appConfiguration,
            services: [StoreService(state: state, closeDatabase: closeDatabase, logger: logger)],
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// Runs until SIGTERM or SIGINT, then shuts down in order (DESIGN.md, "Shutdown"): readiness 503 and new
    /// transactions refused → the HTTP server drains in-flight requests → open transactions are rolled back → the
    /// store is flushed and closed.
    public func run() async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [application, DrainService(state: state, logger: logger)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// Reaps idle and expired transactions while the server runs; at shutdown (after the HTTP server has drained)
/// rolls back every open transaction, waits for their owners, and closes the store.
struct StoreService: Service {
    let state: ServerState
    let closeDatabase: Bool
    let logger: Logger

    func run() async throws {
        let interval = state.limits.reaperInterval
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                state.registry.reap()
            }
        }
        await state.registry.shutdown()
        if closeDatabase, let backend = state.backend {
            await backend.closeForShutdown()
            logger.info("store closed")
        }
    }
}

/// The first step of a shutdown (it is the last service, so the group signals it first): readiness turns 503, new
/// transactions and ops on open ones get `503 57P01`, idle transactions are rolled back at once; then, for
/// `drainDelay`, the server keeps answering before the HTTP server stops accepting connections.
struct DrainService: Service {
    let state: ServerState
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("draining: readiness 503, new transactions refused")
        state.registry.beginDraining()
        let delay = state.configuration.drainDelay
        if delay > .zero {
            // Still serving one-shot requests (with readiness 503) while load balancers take the server out.
            try? await Task.sleep(for: delay)
        }
    }
}

/// `/healthz`, `/readyz`, `/metrics`.
struct HealthRoutes {
    let state: ServerState

    func register(on router: Router<IsoKVRequestContext>) {
        router.get("/healthz") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { _, _ in
            // A probe, answered in plain text: 503 while draining or after a storage failure of a fail-stop store
            // (58030: the engine refuses commits until it is restarted).
            let (status, text): (HTTPResponse.Status, String) =
                state.hasStorageFailed
                ? (.serviceUnavailable, "not ready: storage failure (58030); restart the server\n")
                : !state.isReady
                    ? (.serviceUnavailable, "not ready: shutting down (57P01)\n")
                    : (.ok, "ready\n")
            var headers = HTTPFields()
            headers[.contentType] = "text/plain"
            if status != .ok { headers[.retryAfter] = "1" }
            return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(
                status: .ok, headers: headers,
                body: .init(byteBuffer: ByteBuffer(bytes: state.metrics.scrape(state.backend?.metricsSample()))))
        }
    }
}
