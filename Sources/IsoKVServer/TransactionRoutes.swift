import Foundation
import HTTPTypes
import Hummingbird
import IsoKVCore

/// Interactive transactions as resources: `/v1/transactions[/{id}[/ops|/kv/{key}|/commit|/rollback]]`.
///
/// Every op runs in the transaction's owner task (``TransactionRegistry``). PostgreSQL semantics for errors: the
/// first failing op moves the transaction to `failed`; later ops get `409 25P02`, and commit rolls it back (`409
/// 25P02`, `outcome: rolled_back`). Commit stores its outcome, so repeating it replays the same answer; rollback
/// answers 204 whatever the state (also for unknown, expired and failed transactions).
struct TransactionRoutes {
    let state: ServerState
    var limits: ServerLimits { state.limits }
    var registry: TransactionRegistry { state.registry }

    struct BeginBody: Decodable {
        var isolation: String?
        var read_only: Bool?
        var deferrable: Bool?
        var idle_timeout_ms: Int64?
        var timeout_ms: Int64?
        var lock_timeout_ms: Int64?
    }

    struct OpsBody: Decodable {
        var ops: [OpRequest]
    }

    func register(on router: Router<IsoKVRequestContext>) {
        router.post("/v1/transactions") { request, _ in try await begin(request) }
        router.get("/v1/transactions/{id}") { request, context in try await status(try id(context)) }
        router.post("/v1/transactions/{id}/ops") { request, context in try await ops(request, id: try id(context)) }
        router.post("/v1/transactions/{id}/savepoints") { _, context in try await savepoint(try id(context)) }
        router.post("/v1/transactions/{id}/savepoints/{n}/rollback") { _, context in
            try await rollback(try id(context), toSavepoint: try savepointNumber(context))
        }
        router.delete("/v1/transactions/{id}/savepoints/{n}") { _, context in
            try await release(try id(context), savepoint: try savepointNumber(context))
        }
        router.post("/v1/transactions/{id}/commit") { _, context in try await commit(try id(context)) }
        router.post("/v1/transactions/{id}/rollback") { _, context in await rollback(try id(context)) }
        router.delete("/v1/transactions/{id}") { _, context in await rollback(try id(context)) }
        router.get("/v1/transactions/{id}/kv/**") { request, context in try await kvGet(request, id: try id(context)) }
        router.put("/v1/transactions/{id}/kv/**") { request, context in try await kvPut(request, id: try id(context)) }
        router.delete("/v1/transactions/{id}/kv/**") { request, context in
            try await kvDelete(request, id: try id(context))
        }
    }

    private func id(_ context: IsoKVRequestContext) throws(ServerError) -> String {
        guard let id = context.parameters.get("id"), id.count == 22,
            id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        else {
            throw ServerError(.noActiveTransaction, "no such transaction")
        }
        return id
    }

    // MARK: Begin and status

    func begin(_ request: Request) async throws -> Response {
        let bytes = try await RequestReader.body(request, limit: limits.maxBodyBytes)
        let body = try RequestReader.json(BeginBody.self, from: bytes, allowEmpty: true) ?? BeginBody()
        let isolation: IsolationLevel =
            switch body.isolation {
            case nil, "snapshot", "repeatable_read": .snapshot
            case "serializable": .serializable
            case "read_committed": .readCommitted
            case "read_uncommitted": .readUncommitted
            case let other?:
                throw ServerError.invalid(
                    "unknown isolation \(other): read_uncommitted, read_committed, snapshot (repeatable_read) or serializable",
                    pointer: "/isolation")
            }
        let readOnly = body.read_only ?? false
        let deferrable = body.deferrable ?? false
        if deferrable && !(readOnly && isolation == .serializable) {
            throw ServerError.invalid(
                "deferrable needs isolation serializable and read_only true", pointer: "/deferrable")
        }
        let idle = try duration(
            body.idle_timeout_ms, default: limits.defaultIdleTimeout, max: limits.maxIdleTimeout,
            pointer: "/idle_timeout_ms")
        let lifetime = try duration(
            body.timeout_ms, default: limits.defaultLifetime, max: limits.maxLifetime, pointer: "/timeout_ms")
        if body.lock_timeout_ms != nil {
            throw ServerError.invalid(
                "lock_timeout_ms is not supported (the engine's lock timeout is per database); use wait: nowait on locking reads",
                pointer: "/lock_timeout_ms")
        }
        let db = state.db
        let deferrableStore = db as? any DeferrableTransactions
        if deferrable && deferrableStore == nil {
            throw ServerError.invalid(
                "deferrable transactions are not supported by this server's store", pointer: "/deferrable")
        }
        let id = try registry.open(kind: .interactive, idleTimeout: idle, lifetime: lifetime) {
            if let deferrableStore {
                return try await deferrableStore.begin(isolation, readOnly: readOnly, deferrable: deferrable)
            }
            return try await db.begin(isolation, readOnly: readOnly)
        }
        let expires = Int64(Date().timeIntervalSince1970 * 1000) + lifetime.milliseconds
        var headers = HTTPFields()
        headers[.location] = "/v1/transactions/\(id)"
        return JSONValue.object([
            ("id", .string(id)),
            ("isolation", .string(Self.name(isolation))),
            ("read_only", .bool(readOnly)),
            ("deferrable", .bool(deferrable)),
            ("snapshot_revision", .null),
            ("revision", .uint(state.revision)),
            ("idle_timeout_ms", .int(idle.milliseconds)),
            ("timeout_ms", .int(lifetime.milliseconds)),
            ("expires_at", .int(expires))
        ]).response(status: .created, headers: headers)
    }

    private func duration(_ ms: Int64?, default d: Duration, max: Duration, pointer: String) throws(ServerError)
        -> Duration
    {
        guard let ms else { return d }
        guard ms >= 1, ms <= max.milliseconds else {
            throw .invalid("\(pointer.dropFirst()) must be in 1...\(max.milliseconds)", pointer: pointer)
        }
        return .milliseconds(ms)
    }

    static func name(_ level: IsolationLevel) -> String {
        switch level {
        case .readUncommitted: "read_uncommitted"
        case .readCommitted: "read_committed"
        case .snapshot: "snapshot"
        case .serializable: "serializable"
        }
    }

    /// The transaction's state; reading it does not count as activity (the idle timeout keeps running).
    func status(_ id: String) async throws -> Response {
        if let t = registry.tombstone(id), registry.cursorScope(id) == nil {
            let (s, reason, revision): (String, String?, UInt64?) =
                switch t.outcome {
                case .committed(let r): ("committed", nil, r)
                case .rolledBack(let code, let reason): ("rolled_back", "\(code.rawValue): \(reason)", nil)
                case .unknown(let reason): ("unknown", reason, nil)
                }
            return Self.statusBody(id, s, reason: reason, revision: revision, busy: false)
        }
        guard let info = registry.info(id) else { throw ServerError(.noActiveTransaction, "no such transaction") }
        return Self.statusBody(
            id, info.failure == nil ? "active" : "failed", reason: info.failure, revision: nil,
            busy: info.busy)
    }

    private static func statusBody(_ id: String, _ s: String, reason: String?, revision: UInt64?, busy: Bool)
        -> Response
    {
        JSONValue.object([
            ("id", .string(id)), ("state", .string(s)), ("reason", .optional(reason)),
            ("revision", .optional(revision)), ("busy", .bool(busy))
        ]).response()
    }

    // MARK: Ops

    /// Runs `body` in the owner; a failure moves the transaction to `failed` (25P02 afterwards).
    private func inTransaction<R: Sendable>(
        _ id: String,
        _ body: @escaping @Sendable (any StoreTransaction, OwnerState) async throws -> R
    ) async throws -> R {
        do {
            return try await registry.run(id, kind: .interactive) { tx, owner in
                if let failed = owner.failed {
                    var e = ServerError(
                        .transactionAborted,
                        "the transaction failed earlier (\(failed.code.rawValue): \(failed.message)); roll it back")
                    e.transaction = id
                    throw e
                }
                do {
                    return (try await body(tx, owner), nil)
                } catch {
                    let mapped = ErrorMapping.serverError(from: error)
                    owner.failed = mapped.error
                    registry.noteFailure(id, "\(mapped.code.rawValue): \(mapped.error.message)")
                    throw error
                }
            }
        } catch {
            state.noteError(error)
            var e = ErrorMapping.serverError(from: error)
            e.transaction = id
            throw e
        }
    }

    func ops(_ request: Request, id: String) async throws -> Response {
        let bytes = try await RequestReader.body(request, limit: limits.maxBodyBytes)
        let forceBase64 = try RequestReader.query(request).forceBase64()
        guard let body = try RequestReader.json(OpsBody.self, from: bytes) else {
            throw ServerError.badEncoding("a JSON body is required")
        }
        if body.ops.count > limits.maxOps {
            throw ServerError.tooLarge("ops", limit: limits.maxOps, actual: body.ops.count)
        }
        let ops = try body.ops.enumerated().map { i, r throws(ServerError) in
            try Op.parse(r, pointer: "/ops/\(i)", limits: limits, interactive: true)
        }
        let executor = OpExecutor(db: state.db, limits: limits)
        let results = try await inTransaction(id) { tx, owner in
            var results: [OpResult] = []
            for (i, op) in ops.enumerated() {
                do {
                    results.append(
                        try await executor.run(
                            op, in: tx, written: &owner.writtenKeys,
                            writtenBytes: &owner.writtenBytes, caps: true))
                } catch {
                    var e = ErrorMapping.serverError(from: error)
                    e.opIndex = i
                    e.error.message = "op \(i): " + e.error.message
                    throw e
                }
            }
            return results
        }
        return JSONValue.object([("results", .array(results.map { $0.json(forceBase64: forceBase64) }))]).response()
    }

    // MARK: Single keys inside the transaction

    func kvGet(_ request: Request, id: String) async throws -> Response {
        let key = try RequestReader.pathKey(request, after: "/v1/transactions/\(id)/kv/", limits: limits)
        let query = try RequestReader.query(request)
        let op = try Op.parse(
            OpRequest(
                op: "get", key_b64: KeyText.base64(key), lock: try query.text("lock"), wait: try query.text("wait")),
            pointer: "?", limits: limits, interactive: true)
        let executor = OpExecutor(db: state.db, limits: limits)
        let r = try await inTransaction(id) { tx, owner in
            try await executor.run(
                op, in: tx, written: &owner.writtenKeys, writtenBytes: &owner.writtenBytes, caps: true)
        }
        guard let value = r.value else {
            var e = ServerError.notFound(key)
            e.skipped = r.skipped ? true : nil
            e.transaction = id
            throw e
        }
        var headers = HTTPFields()
        if let v = r.version { headers[.eTag] = ETag.format(v) }
        headers[.contentType] = "application/octet-stream"
        headers[.xContentTypeOptions] = "nosniff"
        let body = value.withUnsafeBytes { ByteBuffer(bytes: $0) }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    func kvPut(_ request: Request, id: String) async throws -> Response {
        let key = try RequestReader.pathKey(request, after: "/v1/transactions/\(id)/kv/", limits: limits)
        let preconditions = try ETag.Preconditions(headers: request.headers)
        let value = try await RequestReader.value(request, key: key, limits: limits)
        let executor = OpExecutor(db: state.db, limits: limits)
        let existed = try await inTransaction(id) { tx, owner in
            let before = try await Self.checkPreconditions(
                preconditions, key: key, tx: tx, owner: owner, executor: executor)
            _ = try await executor.run(
                .put(key, value, ifVersion: nil), in: tx, written: &owner.writtenKeys,
                writtenBytes: &owner.writtenBytes, caps: true)
            return before
        }
        return JSONValue.object([("version", .null), ("created", .bool(!existed))]).response(
            status: existed ? .ok : .created)
    }

    func kvDelete(_ request: Request, id: String) async throws -> Response {
        let key = try RequestReader.pathKey(request, after: "/v1/transactions/\(id)/kv/", limits: limits)
        let preconditions = try ETag.Preconditions(headers: request.headers)
        let executor = OpExecutor(db: state.db, limits: limits)
        let existed = try await inTransaction(id) { tx, owner in
            _ = try await Self.checkPreconditions(preconditions, key: key, tx: tx, owner: owner, executor: executor)
            let r = try await executor.run(
                .delete(key), in: tx, written: &owner.writtenKeys,
                writtenBytes: &owner.writtenBytes, caps: true)
            return r.deleted ?? false
        }
        if !existed {
            var e = ServerError.notFound(key)
            e.transaction = id
            throw e
        }
        return Response(status: .noContent)
    }

    /// Locks the row for update and checks `If-Match` / `If-None-Match` against its current committed version
    /// (exact under the lock; a key this transaction already wrote has no version yet, so a version never matches
    /// it and `*` sees the transaction's own write). Returns whether a value is visible.
    private static func checkPreconditions(
        _ p: ETag.Preconditions, key: Bytes, tx: any StoreTransaction, owner: OwnerState,
        executor: OpExecutor
    ) async throws -> Bool {
        let visible = try await tx.lock(key, .forUpdate, wait: .block) != nil
        if p.isEmpty { return visible }
        let ownWrite = owner.writtenKeys.contains(key)
        let current = ownWrite ? nil : try await executor.currentVersion(key)
        let ok: Bool
        if ownWrite {
            ok =
                (p.ifMatch.map { $0 == [.any] && visible } ?? true)
                && (p.ifNoneMatch.map { !($0.contains(.any) && visible) } ?? true)
        } else {
            ok = p.allows(current: current?.version)
        }
        guard ok else {
            throw ServerError.preconditionFailed(
                "precondition failed (\(p.summary)); current version: \(current.map { ETag.format($0.version) } ?? (ownWrite ? "an uncommitted write of this transaction" : "none (absent)"))",
                key: key, current: current?.version)
        }
        return visible
    }

    // MARK: Savepoints

    private func savepointNumber(_ context: IsoKVRequestContext) throws(ServerError) -> Int {
        guard let text = context.parameters.get("n"), let n = Int(text), n >= 1 else {
            throw ServerError(.invalidSavepoint, "no such savepoint (savepoints are numbered from 1)")
        }
        return n
    }

    /// `POST /v1/transactions/{id}/savepoints` → 201 `{savepoint: n}`: marks a point to roll back to.
    func savepoint(_ id: String) async throws -> Response {
        let n = try await inTransaction(id) { tx, owner in
            let savepoint = try await tx.savepoint()
            owner.nextSavepoint += 1
            owner.savepoints[owner.nextSavepoint] = OwnerState.Mark(
                savepoint: savepoint, writtenKeys: owner.writtenKeys, writtenBytes: owner.writtenBytes)
            return owner.nextSavepoint
        }
        return JSONValue.object([("savepoint", .int(Int64(n)))]).response(status: .created)
    }

    /// `POST /v1/transactions/{id}/savepoints/{n}/rollback` → 204: undoes the writes (and releases the locks) taken
    /// after savepoint `n`, which stays usable; later savepoints are gone. As in PostgreSQL it also works on a
    /// failed transaction and makes it usable again (every failure came after the newest savepoint, since none
    /// can be made in a failed transaction). `409 3B001` for an unknown savepoint.
    func rollback(_ id: String, toSavepoint n: Int) async throws -> Response {
        do {
            try await registry.run(id, kind: .interactive) { tx, owner in
                guard let mark = owner.savepoints[n] else {
                    throw ServerError(
                        .invalidSavepoint, "no savepoint \(n) in this transaction (released or rolled back past)")
                }
                try await tx.rollback(to: mark.savepoint)
                owner.failed = nil
                owner.writtenKeys = mark.writtenKeys
                owner.writtenBytes = mark.writtenBytes
                owner.savepoints = owner.savepoints.filter { $0.key <= n }
                return ((), nil)
            }
            registry.clearFailure(id)
        } catch {
            state.noteError(error)
            var e = ErrorMapping.serverError(from: error)
            e.transaction = id
            throw e
        }
        return Response(status: .noContent)
    }

    /// `DELETE /v1/transactions/{id}/savepoints/{n}` → 204: forgets savepoint `n` and the later ones, keeping
    /// their writes and locks. `409 3B001` for an unknown savepoint.
    func release(_ id: String, savepoint n: Int) async throws -> Response {
        try await inTransaction(id) { tx, owner in
            guard let mark = owner.savepoints[n] else {
                throw ServerError(
                    .invalidSavepoint, "no savepoint \(n) in this transaction (released or rolled back past)")
            }
            try await tx.release(mark.savepoint)
            owner.savepoints = owner.savepoints.filter { $0.key < n }
        }
        return Response(status: .noContent)
    }

    // MARK: Commit and rollback

    enum CommitResult: Sendable {
        case committed(UInt64?)
        case failed(ServerError)
    }

    func commit(_ id: String) async throws -> Response {
        if let t = registry.tombstone(id) { return try Self.replay(t.outcome, id: id) }
        let metrics = state.metrics
        let result: CommitResult
        do {
            result = try await registry.run(id, kind: .interactive) { tx, owner in
                if let failed = owner.failed {
                    try? await tx.rollback()
                    var e = ServerError(
                        .transactionAborted,
                        "the transaction failed earlier (\(failed.code.rawValue): \(failed.message)) and was rolled back"
                    )
                    e.outcome = "rolled_back"
                    return (
                        .failed(e), .rolledBack(code: .transactionAborted, reason: "commit of a failed transaction")
                    )
                }
                do {
                    let (revision, counts) = try await commitReportingVersion(tx)
                    if counts { metrics.commit("interactive") }
                    return (.committed(revision), .committed(revision: revision))
                } catch {
                    var e = ErrorMapping.serverError(from: error)
                    if e.code == .storageFailure {
                        e.outcome = "unknown"
                        return (.failed(e), .unknown(reason: e.error.message))
                    }
                    e.outcome = "rolled_back"
                    try? await tx.rollback()
                    return (.failed(e), .rolledBack(code: e.code, reason: e.error.message))
                }
            }
        } catch let e as ServerError where e.code == .noActiveTransaction || e.code == .transactionAborted {
            // Ended between the tombstone check and the command (the reaper, a rollback): replay that outcome.
            if let t = registry.tombstone(id) { return try Self.replay(t.outcome, id: id) }
            throw e
        }
        switch result {
        case .committed(let revision):
            state.observe(revision)
            return JSONValue.object([("revision", .uint(revision ?? state.revision)), ("outcome", "committed")])
                .response()
        case .failed(var e):
            state.noteError(e)
            e.transaction = id
            throw e
        }
    }

    /// A repeated commit: the stored outcome, answered the same way as the first time.
    static func replay(_ outcome: TransactionRegistry.Outcome, id: String) throws -> Response {
        switch outcome {
        case .committed(let revision):
            return JSONValue.object([("revision", .optional(revision)), ("outcome", "committed")]).response()
        case .rolledBack(let code, let reason):
            var e: ServerError
            switch code {
            case .noActiveTransaction:
                e = ServerError(.noActiveTransaction, "the transaction was rolled back by the client")
            case .idleTimeout, .transactionTimeout, .databaseClosed, .serializationFailure, .deadlockDetected,
                .transactionAborted:
                e = ServerError(code, "the transaction was rolled back: \(reason)")
            default: e = ServerError(.transactionAborted, "the transaction was rolled back: \(reason)")
            }
            e.outcome = "rolled_back"
            e.transaction = id
            throw e
        case .unknown(let reason):
            var e = ServerError(.storageFailure, "the commit's outcome is unknown: \(reason)")
            e.outcome = "unknown"
            e.transaction = id
            throw e
        }
    }

    /// Always 204: ends the transaction if it is open (interrupting a waiting op) and waits until its owner
    /// has rolled it back, so its locks are free when the client hears back.
    func rollback(_ id: String) async -> Response {
        if let task = registry.end(
            id, kind: .interactive, .rolledBack(code: .noActiveTransaction, reason: "rolled back by the client"))
        {
            await task.value
        }
        return Response(status: .noContent)
    }
}
