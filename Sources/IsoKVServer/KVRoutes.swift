import HTTPTypes
import Hummingbird
import IsoKVCore

/// `/v1/kv/{key}` (GET, HEAD, PUT, DELETE), `/v1/incr/{key}` and the scan `GET /v1/kv`.
struct KVRoutes {
    let state: ServerState

    func register(on router: Router<IsoKVRequestContext>) {
        // `**` captures one or more segments; the key is decoded from the raw path (KeyText.decodePath), so `%2F`
        // and binary bytes survive. Metrics report the route as `/v1/kv/{key}`.
        router.get("/v1/kv/**") { request, _ in try await get(request) }
        router.put("/v1/kv/**") { request, _ in try await put(request) }
        router.delete("/v1/kv/**") { request, _ in try await delete(request) }
        router.post("/v1/incr/**") { request, _ in try await increment(request) }
        router.get("/v1/kv") { request, _ in try await ScanRoutes(state: state).scan(request) }
    }

    var limits: ServerLimits { state.limits }

    // MARK: GET / HEAD

    func get(_ request: Request) async throws -> Response {
        let key = try RequestReader.pathKey(request, after: "/v1/kv/", limits: limits)
        let preconditions = try ETag.Preconditions(headers: request.headers)
        let query = try RequestReader.query(request)
        let current = try await state.db.get(key)
        state.observe(current?.version)
        var headers = HTTPFields()
        headers[.isokvRevision] = String(state.revision)
        if preconditions.ifMatch != nil,
            !ETag.Preconditions(ifMatch: preconditions.ifMatch).allows(current: current?.version)
        {
            throw ServerError.preconditionFailed(
                "If-Match did not match; current version: \(current.map { ETag.format($0.version) } ?? "none (absent)")",
                key: key, current: current?.version)
        }
        guard let current else { throw ServerError.notFound(key) }
        headers[.eTag] = ETag.format(current.version)
        if preconditions.notModified(current: current.version) {
            return Response(status: .notModified, headers: headers)
        }
        if wantsJSON(request) {
            let body = JSONValue.object(
                KeyText.fields(key, name: "key", forceBase64: try query.forceBase64())
                    + KeyText.fields(current.value, name: "value", forceBase64: try query.forceBase64())
                    + [("version", .uint(current.version))])
            return body.response(headers: headers)
        }
        headers[.contentType] = "application/octet-stream"
        headers[.xContentTypeOptions] = "nosniff"
        let body = current.value.withUnsafeBytes { ByteBuffer(bytes: $0) }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    private func wantsJSON(_ request: Request) -> Bool {
        guard let accept = request.headers[.accept] else { return false }
        return accept.contains("application/json") && !accept.contains("application/octet-stream")
    }

    // MARK: PUT / DELETE

    func put(_ request: Request) async throws -> Response {
        let key = try RequestReader.pathKey(request, after: "/v1/kv/", limits: limits)
        let preconditions = try ETag.Preconditions(headers: request.headers)
        let value = try await RequestReader.value(request, key: key, limits: limits)
        let outcome = try await SingleKeyWrite(state: state).write(key, preconditions: preconditions) { _ in .put(value)
        }
        var headers = HTTPFields()
        headers[.eTag] = ETag.format(outcome.version)
        headers[.isokvRevision] = String(state.revision)
        headers[.location] = "/v1/kv/" + KeyText.encodePath(key)
        return JSONValue.object([
            ("version", .uint(outcome.version)), ("revision", .uint(outcome.version)),
            ("created", .bool(outcome.previous == nil))
        ])
        .response(status: outcome.previous == nil ? .created : .ok, headers: headers)
    }

    func delete(_ request: Request) async throws -> Response {
        let key = try RequestReader.pathKey(request, after: "/v1/kv/", limits: limits)
        let preconditions = try ETag.Preconditions(headers: request.headers)
        _ = try await SingleKeyWrite(state: state).write(key, preconditions: preconditions) { current in
            guard current != nil else { throw ServerError.notFound(key) }
            return .delete
        }
        var headers = HTTPFields()
        headers[.isokvRevision] = String(state.revision)
        return Response(status: .noContent, headers: headers)
    }

    // MARK: POST /v1/incr/{key}

    struct IncrementBody: Decodable {
        var delta: Int64?
        var initial: Int64?
    }

    func increment(_ request: Request) async throws -> Response {
        let key = try RequestReader.pathKey(request, after: "/v1/incr/", limits: limits)
        let preconditions = try ETag.Preconditions(headers: request.headers)
        let bytes = try await RequestReader.body(request, limit: limits.maxBodyBytes)
        let body = try RequestReader.json(IncrementBody.self, from: bytes, allowEmpty: true)
        let delta = body?.delta ?? 1, initial = body?.initial ?? 0
        var newValue = Bytes.empty
        let outcome = try await SingleKeyWrite(state: state).write(key, preconditions: preconditions) { current in
            let v = try OpExecutor.increment(current?.value, by: delta, initial: initial, key: key)
            return .put(v)
        } onValue: {
            newValue = $0
        }
        var headers = HTTPFields()
        headers[.eTag] = ETag.format(outcome.version)
        headers[.isokvRevision] = String(state.revision)
        return JSONValue.object([
            ("value", .string(newValue.string ?? "")), ("version", .uint(outcome.version)),
            ("revision", .uint(outcome.version))
        ]).response(headers: headers)
    }
}

/// A one-shot write of one key, through the store contract's single-key operations (so it works on every store,
/// and on PostgreSQL each step is one statement): read the current value and version, evaluate the preconditions
/// against that version, then write *conditioned on that same version* (`put(ifVersion:)`, `put(ifAbsent:)`,
/// `delete(ifVersion:)`). The check and the write are therefore one atomic step: if another write slipped in
/// between, the conditional write fails (`IK412` or `23505`) and the loop starts over with the new version, where
/// the preconditions are evaluated again. Each retry means another write succeeded, so the loop makes progress;
/// it is bounded by `maxWriteAttempts`, after which the client gets a retryable `40001`. Retryable store errors
/// (`40001`, `40P01`) are retried `internalRetries` times with backoff.
struct SingleKeyWrite {
    let state: ServerState

    enum Decision { case put(Bytes), delete }

    struct Outcome {
        /// The version before the write (nil: absent).
        var previous: VersionedValue?
        /// The new version (0 for a delete).
        var version: UInt64
    }

    /// Conditional writes lost to a concurrent writer before the request gives up with `40001`.
    static let maxWriteAttempts = 1000

    func write(
        _ key: Bytes, preconditions: ETag.Preconditions,
        decide: (VersionedValue?) throws -> Decision,
        onValue: (Bytes) -> Void = { _ in }
    ) async throws -> Outcome {
        let db = state.db
        var errors = 1
        var lost = 0
        while true {
            do {
                let current = try await db.get(key)
                state.observe(current?.version)
                guard preconditions.allows(current: current?.version) else {
                    throw ServerError.preconditionFailed(
                        "precondition failed (\(preconditions.summary)); current version: \(current.map { ETag.format($0.version) } ?? "none (absent)")",
                        key: key, current: current?.version)
                }
                let version: UInt64
                do {
                    switch (try decide(current), current) {
                    case (.put(let value), nil):
                        onValue(value)
                        version = try await db.put(key, value, ifAbsent: true)
                    case (.put(let value), let current?):
                        onValue(value)
                        version = try await db.put(key, value, ifVersion: current.version)
                    case (.delete, let current?):
                        try await db.delete(key, ifVersion: current.version)
                        version = 0
                    case (.delete, nil):
                        throw ServerError.notFound(key)
                    }
                } catch let e as IsoKVError where e.code == .versionMismatch || e.code == .uniqueViolation {
                    // Another write came between the read and the conditional write: read again.
                    lost += 1
                    if lost >= Self.maxWriteAttempts {
                        throw IsoKVError(
                            .serializationFailure,
                            "\(lost) concurrent writes to the key came between this request's read and its write")
                    }
                    continue
                }
                state.observe(version)
                state.metrics.commit("single")
                return Outcome(previous: current, version: version)
            } catch {
                state.noteError(error)
                if let e = error as? IsoKVError, e.isRetryable, errors < state.limits.internalRetries {
                    errors += 1
                    try await RetryPolicy.default.sleepBeforeRetry(errors - 1)
                    continue
                }
                throw error
            }
        }
    }
}

extension RetryPolicy {
    /// Full-jitter backoff before attempt `attempt + 1` (the same schedule as the engine's retries).
    func sleepBeforeRetry(_ attempt: Int) async throws {
        let capMicros = min(50_000, 200 << min(attempt - 1, 8))
        try await Task.sleep(for: .microseconds(Int.random(in: 0...capMicros)))
    }
}
