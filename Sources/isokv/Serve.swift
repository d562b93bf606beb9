import ArgumentParser
import Foundation
import IsoKV
import IsoKVCore
import IsoKVPostgres
import IsoKVServer
import Logging

/// `isokv serve`: the store over HTTP (the API is in Sources/IsoKVServer/DESIGN.md).
///
/// Opens the durable store in `--data` (`Database.open` creates it mode 0700 and refuses one other users can
/// write), or, with `--backend postgres://…`, connects to PostgreSQL (the server then keeps no data: several
/// servers can serve one database). Listens on `--listen` (loopback by default), and runs until SIGTERM/SIGINT,
/// then shuts down in order: readiness 503 → in-flight requests drain → open transactions roll back → the store is
/// flushed and closed (or its connections released). Nothing acknowledged is lost.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the store over HTTP (GET/PUT with ETags, batches, transactions, queues, metrics)."
    )

    @Option(help: "The data directory of the embedded store (default ./isokv-data; created if missing, mode 0700).")
    var data: String?

    @Option(
        help: """
            The store: embedded (the default: the durable engine in --data) or \
            postgres://user[:password]@host[:port][/database][?schema=NAME] (PostgreSQL; the server keeps no state, \
            so several servers can share one database).
            """)
    var backend: String?

    @Option(help: "Address and port to listen on (host:port; [v6]:port; default 127.0.0.1:7070).")
    var listen: String?

    @Option(
        help:
            "Embedded store: when a write is acknowledged: fsync (on stable storage, the default), buffered (in the page cache), unsafe-no-sync."
    )
    var durability: String?

    @Option(help: "A file holding the bearer token clients must send (Authorization: Bearer …).")
    var tokenFile: String?

    @Option(help: "Largest request body in bytes (suffixes K, M accepted; default 2M).")
    var maxBody: String?

    @Option(
        help:
            "After SIGTERM, keep serving this many milliseconds with /readyz answering 503 before stopping (default 0)."
    )
    var drainDelayMs: Int?

    @Flag(help: "Allow a non-loopback address without a token.")
    var insecure = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default info).")
    var logLevel: String?

    @Option(
        help: """
            A JSON file of settings whose keys are these options' long names ({"listen": "0.0.0.0:7070", \
            "token-file": "/etc/isokv/token", "insecure": false, …}); options given on the command line override it.
            """)
    var config: String?

    func run() async throws {
        var settings = self
        if let config { try settings.apply(try ServeConfigFile.load(config)) }
        try await settings.serve()
    }

    func serve() async throws {
        let listen = self.listen ?? "127.0.0.1:7070"
        let maxBody = self.maxBody ?? "2M"
        let drainDelayMs = self.drainDelayMs ?? 0
        guard let level = Logger.Level(rawValue: logLevel ?? "info") else {
            throw ValidationError("--log-level must be trace, debug, info, notice, warning, error or critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "isokv")
        let (host, port) = try Self.parseListen(listen)
        guard let bodyLimit = Self.parseSize(maxBody), bodyLimit >= 1024 else {
            throw ValidationError("--max-body must be a size of at least 1024 bytes (e.g. 2M)")
        }
        var token: String?
        if let tokenFile {
            token = try Self.readToken(tokenFile, logger: logger)
        }
        if token == nil && !Self.isLoopback(host) && !insecure {
            throw ValidationError("refusing to listen on \(host) without --token-file (add --insecure to allow it)")
        }
        var limits = ServerLimits()
        limits.maxBodyBytes = bodyLimit
        limits.maxValueBytes = min(limits.maxValueBytes, bodyLimit)
        guard (0...60_000).contains(drainDelayMs) else {
            throw ValidationError("--drain-delay-ms must be in 0...60000")
        }
        let (store, storeDescription) = try await openStore(limits: limits)
        var config = ServerConfiguration(host: host, port: port, token: token, limits: limits)
        config.drainDelay = .milliseconds(drainDelayMs)
        let auth = token == nil ? "none" : "bearer token"
        let server = try IsoKVServer(configuration: config, database: store, logger: logger) { bound in
            let shown = host.contains(":") ? "[\(host)]" : host
            Self.say(
                "isokv: listening on http://\(shown):\(bound) (\(storeDescription), auth: \(auth), "
                    + "allocator: \(Allocator.setting))")
        }
        try await server.run()
        Self.say("isokv: stopped; store closed")
    }

    /// A line on standard output, written at once (a test or a supervisor may be waiting for it).
    static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress!, $0.count) }
            if n <= 0 { return }
            offset += n
        }
    }

    static func parseListen(_ s: String) throws -> (String, Int) {
        var host: Substring, portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else {
                throw ValidationError("--listen must be host:port or [v6-address]:port")
            }
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":") else { throw ValidationError("--listen must be host:port") }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
            throw ValidationError("--listen must be host:port with a port in 0...65535")
        }
        return (String(host), port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    static func parseSize(_ s: String) -> Int? {
        let multipliers: [Character: Int] = ["K": 1 << 10, "k": 1 << 10, "M": 1 << 20, "m": 1 << 20]
        if let last = s.last, let m = multipliers[last] { return Int(s.dropLast()).map { $0 * m } }
        return Int(s)
    }

    static func readToken(_ file: String, logger: Logger) throws -> String {
        guard let contents = FileManager.default.contents(atPath: file),
            let text = String(data: contents, encoding: .utf8)
        else {
            throw ValidationError("cannot read the token file \(file)")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw ValidationError("the token file \(file) is empty") }
        if let attributes = try? FileManager.default.attributesOfItem(atPath: file),
            let permissions = attributes[.posixPermissions] as? Int, permissions & 0o077 != 0
        {
            logger.warning(
                "the token file is readable by other users; chmod 600 it",
                metadata: ["file": .string(file), "mode": .string(String(permissions, radix: 8))])
        }
        return token
    }

    /// Opens the store `--backend` names; returns it and how `listening on` describes it.
    func openStore(limits: ServerLimits) async throws -> (any KeyValueStore, String) {
        let backend = self.backend ?? "embedded"
        if backend == "embedded" {
            let mode: Database.Durability =
                switch durability ?? "fsync" {
                case "fsync": .fsync
                case "buffered": .buffered
                case "unsafe-no-sync": .unsafeNoSync
                default: throw ValidationError("--durability must be fsync, buffered or unsafe-no-sync")
                }
            let path = URL(fileURLWithPath: data ?? "./isokv-data").standardizedFileURL.path
            // Missing parents are created here; the data directory itself (mode 0700, refused if others can write
            // it) by Database.open.
            let parent = (path as NSString).deletingLastPathComponent
            if !parent.isEmpty, !FileManager.default.fileExists(atPath: parent) {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            }
            var engine = Database.Configuration()
            engine.limits.maxWritesPerTransaction = limits.maxTransactionWrites
            let db = try await Database.open(path: path, options: .init(durability: mode, configuration: engine))
            return (db, "data: \(path), durability: \(mode)")
        }
        guard backend.hasPrefix("postgres://") || backend.hasPrefix("postgresql://") else {
            throw ValidationError("--backend must be embedded or a postgres:// URL")
        }
        if data != nil || durability != nil {
            throw ValidationError("--data and --durability are for the embedded store; PostgreSQL keeps the data")
        }
        var configuration = try PostgresStore.Configuration(url: backend)
        configuration.limits.maxWritesPerTransaction = limits.maxTransactionWrites
        let store = try await PostgresStore(configuration: configuration)
        let c = configuration.client
        return (
            store,
            "backend: postgresql on \(c.host ?? "?"):\(c.port ?? 5432), database \(c.database ?? c.username), schema \(configuration.schema)"
        )
    }
}
