import HTTPTypes
import Hummingbird
import IsoKVCore

/// `POST /v1/txn`: compares, then the `success` or the `failure` ops, atomically.
///
/// Execution (one engine transaction at read committed, retried on `40001`/`40P01` up to `internalRetries`):
/// 1. Lock every key the compares and both branches name, in key order (so two batches never deadlock):
///    `for_update` if either branch writes it, `for_share` otherwise. While held, the versions read with
///    `db.get` are exact: every writer needs the exclusive lock.
/// 2. Evaluate every compare (all of them, to report each failure).
/// 3. Run the chosen branch in order; the first failing op rolls everything back (`op_index` names it).
///    No `failure` branch and a compare failed: `412 IK412` with `failed_compares`, nothing written.
/// 4. Commit; the results of writes (and of reads of keys this batch wrote) get the commit revision.
/// Range ops (`scan`, `delete_range`) read the rows present when they run; rows inserted into their range by
/// others after that are not seen (no predicate locks at this level).
struct BatchRoutes {
    let state: ServerState
    var limits: ServerLimits { state.limits }

    struct Body: Decodable {
        var compare: [CompareRequest]?
        var success: [OpRequest]?
        var failure: [OpRequest]?
    }

    struct CompareRequest: Decodable {
        var key: String?
        var key_b64: String?
        var exists: Bool?
        var version: VersionTest?
        var value: String?
        var value_b64: String?
        var prefix: String?
        var prefix_b64: String?
        var max_version: UInt64?
    }

    /// `version: N` or `version: {lt|le|gt|ge|ne|eq: N}`.
    struct VersionTest: Decodable {
        var op: String
        var n: UInt64

        init(from decoder: any Decoder) throws {
            if let n = try? decoder.singleValueContainer().decode(UInt64.self) {
                op = "eq"
                self.n = n
                return
            }
            let c = try decoder.container(keyedBy: AnyKey.self)
            guard c.allKeys.count == 1, let k = c.allKeys.first,
                ["eq", "ne", "lt", "le", "gt", "ge"].contains(k.stringValue)
            else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: decoder.codingPath,
                        debugDescription: "version must be a number or one of {eq|ne|lt|le|gt|ge: N}"))
            }
            op = k.stringValue
            n = try c.decode(UInt64.self, forKey: k)
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    enum Compare: Sendable {
        case exists(Bytes, Bool)
        case version(Bytes, op: String, UInt64)
        case value(Bytes, Bytes)

        var key: Bytes {
            switch self {
            case .exists(let k, _), .version(let k, _, _), .value(let k, _): k
            }
        }

        /// Evaluated against the key's current committed state. A value compare on an absent key is false.
        func holds(_ current: VersionedValue?) -> Bool {
            switch self {
            case .exists(_, let want): return (current != nil) == want
            case .value(_, let v): return current?.value == v
            case .version(_, let op, let n):
                // An absent key has version 0 for ordering compares (so `lt`/`ne` can test "absent or older").
                let v = current?.version ?? 0
                switch op {
                case "eq": return current != nil && v == n
                case "ne": return v != n
                case "lt": return v < n
                case "le": return v <= n
                case "gt": return v > n
                default: return v >= n
                }
            }
        }
    }

    func register(on router: Router<IsoKVRequestContext>) {
        router.post("/v1/txn") { request, _ in try await txn(request) }
    }

    func txn(_ request: Request) async throws -> Response {
        let bytes = try await RequestReader.body(request, limit: limits.maxBodyBytes)
        let query = try RequestReader.query(request)
        let forceBase64 = try query.forceBase64()
        guard let body = try RequestReader.json(Body.self, from: bytes) else {
            throw ServerError.badEncoding("a JSON body is required")
        }
        let total = (body.compare?.count ?? 0) + (body.success?.count ?? 0) + (body.failure?.count ?? 0)
        if total > limits.maxOps {
            throw ServerError.tooLarge("compares plus ops", limit: limits.maxOps, actual: total)
        }
        let compares = try (body.compare ?? []).enumerated().map { i, c throws(ServerError) in
            try parseCompare(c, pointer: "/compare/\(i)")
        }
        let success = try parseOps(body.success ?? [], pointer: "/success")
        let failure = try body.failure.map { ops throws(ServerError) in try parseOps(ops, pointer: "/failure") }

        var attempt = 1
        while true {
            do {
                return try await runOnce(
                    compares: compares, success: success, failure: failure, forceBase64: forceBase64)
            } catch let e as IsoKVError where e.isRetryable && attempt < limits.internalRetries {
                attempt += 1
                try await RetryPolicy.default.sleepBeforeRetry(attempt - 1)
            }
        }
    }

    private func parseOps(_ ops: [OpRequest], pointer: String) throws(ServerError) -> [Op] {
        var parsed: [Op] = []
        var written: Set<Bytes> = []
        for (i, r) in ops.enumerated() {
            let op = try Op.parse(r, pointer: "\(pointer)/\(i)", limits: limits, interactive: false)
            if op.writes, let k = op.pointKey {
                if !written.insert(k).inserted {
                    var e = ServerError.invalid("the key is written twice in one branch", pointer: "\(pointer)/\(i)")
                    e.error.key = k
                    e.opIndex = i
                    throw e
                }
            }
            parsed.append(op)
        }
        return parsed
    }

    private func parseCompare(_ c: CompareRequest, pointer: String) throws(ServerError) -> Compare {
        if c.prefix != nil || c.prefix_b64 != nil || c.max_version != nil {
            throw .invalid(
                "range compares ({prefix, max_version}) are not supported: the engine does not report deletions under a prefix",
                pointer: pointer)
        }
        let key = try KeyText.one(c.key, c.key_b64, name: "key", pointer: pointer + "/key")
        try RequestReader.check(key: key, limits: limits, pointer: pointer + "/key")
        let value = try KeyText.optional(c.value, c.value_b64, name: "value", pointer: pointer + "/value")
        let given = (c.exists != nil ? 1 : 0) + (c.version != nil ? 1 : 0) + (value != nil ? 1 : 0)
        guard given == 1 else {
            throw .invalid("a compare needs exactly one of exists, version and value", pointer: pointer)
        }
        if let e = c.exists { return .exists(key, e) }
        if let v = c.version { return .version(key, op: v.op, v.n) }
        return .value(key, value!)
    }

    private func runOnce(compares: [Compare], success: [Op], failure: [Op]?, forceBase64: Bool) async throws -> Response
    {
        let db = state.db
        let tx = try await db.begin(.readCommitted, readOnly: false)
        do {
            // 1. Locks in key order.
            var modes: [Bytes: RowLockMode] = [:]
            for c in compares where modes[c.key] == nil { modes[c.key] = .forShare }
            for op in success + (failure ?? []) {
                guard let k = op.pointKey else { continue }
                if op.writes { modes[k] = .forUpdate } else if modes[k] == nil { modes[k] = .forShare }
            }
            // A store may lock nothing for an absent key (PostgreSQL: no row, no lock). So a key found absent here
            // is written with `insert`, which fails if another transaction created it meanwhile; that failure is
            // turned into a retryable `40001` and the whole batch runs again (see OpExecutor.run's `createOnly`).
            var absent: Set<Bytes> = []
            for key in modes.keys.sorted() where try await tx.lock(key, modes[key]!, wait: .block) == nil {
                absent.insert(key)
            }
            // 2. Compares.
            var failed: [Int] = []
            for (i, c) in compares.enumerated() {
                let current = try await db.get(c.key)
                state.observe(current?.version)
                if !c.holds(current) { failed.append(i) }
            }
            let succeeded = failed.isEmpty
            if !succeeded && failure == nil {
                try await tx.rollback()
                var e = ServerError(
                    .versionMismatch,
                    "compare\(failed.count == 1 ? "" : "s") \(failed.map(String.init).joined(separator: ", ")) failed and there is no failure branch",
                    key: compares[failed[0]].key)
                e.failedCompares = failed
                e.opIndex = failed[0]
                e.currentVersion = try await db.get(compares[failed[0]].key)?.version
                throw e
            }
            // 3. The branch.
            let ops = succeeded ? success : (failure ?? [])
            let executor = OpExecutor(db: db, limits: limits)
            var written: Set<Bytes> = []
            var writtenBytes = 0
            var results: [OpResult] = []
            for (i, op) in ops.enumerated() {
                do {
                    var r = try await executor.run(
                        op, in: tx, written: &written, writtenBytes: &writtenBytes, caps: false, createOnly: absent)
                    if case .get(let k, _, _) = op, written.contains(k) { r.versionIsCommit = true }
                    results.append(r)
                } catch {
                    var e = ErrorMapping.serverError(from: error)
                    if (error as? IsoKVError)?.isRetryable == true { throw error }
                    e.opIndex = i
                    e.error.message = "\(succeeded ? "success" : "failure") op \(i): " + e.error.message
                    throw e
                }
            }
            // 4. Commit.
            let (revision, counts) = try await commitReportingVersion(tx)
            if counts { state.metrics.commit("batch") }
            if let revision {
                state.observe(revision)
                for i in results.indices
                where results[i].versionIsCommit && results[i].op != "delete" && results[i].op != "delete_range" {
                    results[i].version = revision
                }
            }
            return JSONValue.object([
                ("succeeded", .bool(succeeded)),
                ("revision", .uint(revision ?? state.revision)),
                ("results", .array(results.map { $0.json(forceBase64: forceBase64) })),
                ("failed_compares", .array(failed.map { .int(Int64($0)) }))
            ]).response()
        } catch {
            try? await tx.rollback()
            state.noteError(error)
            throw error
        }
    }
}
