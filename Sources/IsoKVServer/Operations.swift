import IsoKVCore

/// One op of `POST /v1/txn` or `POST /v1/transactions/{id}/ops`, as sent.
struct OpRequest: Decodable, Sendable {
    var op: String?
    var key: String?
    var key_b64: String?
    var value: String?
    var value_b64: String?
    var prefix: String?
    var prefix_b64: String?
    var start: String?
    var start_b64: String?
    var end: String?
    var end_b64: String?
    var if_version: UInt64?
    var delta: Int64?
    var initial: Int64?
    var limit: Int?
    var reverse: Bool?
    var keys_only: Bool?
    var lock: String?
    var wait: String?
    var version: UInt64?
    var exists: Bool?
}

/// An op, validated.
enum Op: Sendable {
    case get(Bytes, lock: RowLockMode?, wait: LockWait)
    case put(Bytes, Bytes, ifVersion: UInt64?)
    case create(Bytes, Bytes)
    case delete(Bytes)
    case deleteRange(KeyRange)
    case incr(Bytes, delta: Int64, initial: Int64)
    case scan(KeyRange, limit: Int, reverse: Bool, keysOnly: Bool, lock: RowLockMode?, wait: LockWait)
    /// Interactive transactions only: fails with `IK412` unless the key's version (or existence) is as given.
    case assert(Bytes, version: UInt64?, exists: Bool?)

    var name: String {
        switch self {
        case .get: "get"
        case .put: "put"
        case .create: "create"
        case .delete: "delete"
        case .deleteRange: "delete_range"
        case .incr: "incr"
        case .scan: "scan"
        case .assert: "assert"
        }
    }

    /// The single key a point op touches.
    var pointKey: Bytes? {
        switch self {
        case .get(let k, _, _), .put(let k, _, _), .create(let k, _), .delete(let k), .incr(let k, _, _),
            .assert(let k, _, _):
            k
        case .deleteRange, .scan: nil
        }
    }

    var writes: Bool {
        switch self {
        case .put, .create, .delete, .incr, .deleteRange: true
        case .get, .scan, .assert: false
        }
    }

    /// Validates `r` (at JSON Pointer `pointer`). `interactive` allows `assert` and row locks.
    static func parse(_ r: OpRequest, pointer: String, limits: ServerLimits, interactive: Bool) throws(ServerError)
        -> Op
    {
        func key() throws(ServerError) -> Bytes {
            let k = try KeyText.one(r.key, r.key_b64, name: "key", pointer: pointer + "/key")
            try RequestReader.check(key: k, limits: limits, pointer: pointer + "/key")
            return k
        }
        func value(_ k: Bytes) throws(ServerError) -> Bytes {
            let v = try KeyText.one(r.value, r.value_b64, name: "value", pointer: pointer + "/value")
            try RequestReader.check(value: v, key: k, limits: limits, pointer: pointer + "/value")
            return v
        }
        func lockMode() throws(ServerError) -> (RowLockMode?, LockWait) {
            let mode: RowLockMode? =
                switch r.lock {
                case nil: nil
                case "for_update": .forUpdate
                case "for_share": .forShare
                default: throw .invalid("lock must be for_update or for_share", pointer: pointer + "/lock")
                }
            let wait: LockWait =
                switch r.wait {
                case nil, "block": .block
                case "nowait": .noWait
                case "skip_locked": .skipLocked
                default: throw .invalid("wait must be block, nowait or skip_locked", pointer: pointer + "/wait")
                }
            if mode != nil && !interactive {
                throw .invalid(
                    "row locks are for interactive transactions (POST /v1/txn locks its keys itself)",
                    pointer: pointer + "/lock")
            }
            if mode == nil && r.wait != nil { throw .invalid("wait needs lock", pointer: pointer + "/wait") }
            return (mode, wait)
        }
        switch r.op {
        case "get":
            let (mode, wait) = try lockMode()
            return .get(try key(), lock: mode, wait: wait)
        case "put":
            let k = try key()
            return .put(k, try value(k), ifVersion: r.if_version)
        case "create":
            let k = try key()
            return .create(k, try value(k))
        case "delete":
            return .delete(try key())
        case "delete_range":
            return .deleteRange(try range(r, pointer: pointer, limits: limits, required: true))
        case "incr":
            return .incr(try key(), delta: r.delta ?? 1, initial: r.initial ?? 0)
        case "scan":
            let (mode, wait) = try lockMode()
            let limit = r.limit ?? limits.defaultScanLimit
            guard (1...limits.maxScanLimit).contains(limit) else {
                throw .invalid("limit must be in 1...\(limits.maxScanLimit)", pointer: pointer + "/limit")
            }
            return .scan(
                try range(r, pointer: pointer, limits: limits, required: false), limit: limit,
                reverse: r.reverse ?? false, keysOnly: r.keys_only ?? false, lock: mode, wait: wait)
        case "assert":
            guard interactive else {
                throw .invalid("assert is for interactive transactions; use compare", pointer: pointer + "/op")
            }
            guard (r.version == nil) != (r.exists == nil) else {
                throw .invalid("assert needs exactly one of version and exists", pointer: pointer)
            }
            return .assert(try key(), version: r.version, exists: r.exists)
        case nil: throw .invalid("missing op", pointer: pointer + "/op")
        case let other?: throw .invalid("unknown op \(other)", pointer: pointer + "/op")
        }
    }

    /// `prefix[_b64]` or `start[_b64]` + `end[_b64]` (half-open), never both forms; clamped off the reserved keys.
    static func range(_ r: OpRequest, pointer: String, limits: ServerLimits, required: Bool) throws(ServerError)
        -> KeyRange
    {
        let prefix = try KeyText.optional(r.prefix, r.prefix_b64, name: "prefix", pointer: pointer + "/prefix")
        let start = try KeyText.optional(r.start, r.start_b64, name: "start", pointer: pointer + "/start")
        let end = try KeyText.optional(r.end, r.end_b64, name: "end", pointer: pointer + "/end")
        return try makeRange(prefix: prefix, start: start, end: end, required: required, pointer: pointer)
    }

    static func makeRange(prefix: Bytes?, start: Bytes?, end: Bytes?, required: Bool, pointer: String)
        throws(ServerError) -> KeyRange
    {
        if prefix != nil && (start != nil || end != nil) {
            throw .invalid("give prefix or start/end, not both", pointer: pointer + "/prefix")
        }
        if let prefix {
            if Reserved.isReserved(prefix) {
                throw .invalid("the prefix FF FF is reserved", pointer: pointer + "/prefix")
            }
            return Reserved.clamp(.prefix(prefix))
        }
        if required && start == nil && end == nil {
            throw .invalid("a range needs prefix or start/end", pointer: pointer + "/prefix")
        }
        if let start, let end, !(start < end) && start != end {
            throw .invalid("start must not be after end", pointer: pointer + "/start")
        }
        return Reserved.clamp(KeyRange(from: start, to: end))
    }
}

/// The result of one op, always with every member.
struct OpResult: Sendable {
    var op: String
    var key: Bytes?
    var found: Bool?
    var value: Bytes?
    var version: UInt64?
    var deleted: Bool?
    var count: Int?
    var items: [ScanItem]?
    /// A locking read with `wait: skip_locked` left the row out (another transaction holds its lock).
    var skipped = false
    /// Scans: whether rows follow this page.
    var more: Bool?
    /// Filled with the commit revision after commit (writes, and reads of keys this batch wrote).
    var versionIsCommit = false

    func json(forceBase64: Bool) -> JSONValue {
        .object(
            [("op", .string(op))]
                + KeyText.fields(key, name: "key", forceBase64: forceBase64)
                + [("found", .optional(found))]
                + KeyText.fields(value, name: "value", forceBase64: forceBase64)
                + [
                    ("version", .optional(version)), ("deleted", .optional(deleted)), ("count", .optional(count)),
                    ("more", .optional(more)),
                    ("items", items.map { .array($0.map { $0.json(forceBase64: forceBase64) }) } ?? .null)
                ])
    }
}

/// One row of a scan.
struct ScanItem: Sendable {
    var key: Bytes
    var value: Bytes?
    /// The key's current version if the scanned value is still the current one, else nil (the engine's snapshot
    /// reads do not report versions).
    var version: UInt64?

    func json(forceBase64: Bool) -> JSONValue {
        .object(
            KeyText.fields(key, name: "key", forceBase64: forceBase64)
                + KeyText.fields(value, name: "value", forceBase64: forceBase64)
                + [("version", .optional(version))])
    }
}

/// Executes ops inside an engine transaction. Used by the batch endpoint (in the request's own task) and by
/// interactive transactions (in the owner task); never shares the handle.
struct OpExecutor {
    let db: any KeyValueStore
    let limits: ServerLimits

    /// The current committed version of `key`, exact while this transaction holds a row lock on it (every writer
    /// of the key needs the exclusive lock, and a lock is released only after its commit is published).
    func currentVersion(_ key: Bytes) async throws -> VersionedValue? { try await db.get(key) }

    /// Runs `op`. `written` tracks keys written so far (to report a pending own write's version as unknown and to
    /// enforce the write caps when `caps`).
    ///
    /// `createOnly`: keys the caller found absent under its lock; a `put` or `incr` of one (not yet written here) is
    /// an `insert`, and a concurrent creation (`23505`) becomes a retryable `40001`, because a store may not lock
    /// an absent key (PostgreSQL).
    func run(
        _ op: Op, in tx: any StoreTransaction, written: inout Set<Bytes>, writtenBytes: inout Int, caps: Bool,
        createOnly: Set<Bytes> = []
    ) async throws -> OpResult {
        /// Writes `value`, as an insert when `key` must still be absent.
        func write(_ key: Bytes, _ value: Bytes, wasWritten: Bool) async throws {
            guard createOnly.contains(key) && !wasWritten else { return try await tx.put(key, value) }
            do {
                try await tx.insert(key, value)
            } catch let e as IsoKVError where e.code == .uniqueViolation {
                throw IsoKVError(
                    .serializationFailure, "the key was created by a concurrent transaction after it was checked",
                    key: key)
            }
        }
        func noteWrite(_ key: Bytes, _ bytes: Int) throws(ServerError) {
            if caps {
                if !written.contains(key) && written.count >= limits.maxTransactionWrites {
                    throw .tooLarge(
                        "keys written by the transaction", limit: limits.maxTransactionWrites,
                        actual: written.count + 1, key: key)
                }
                if writtenBytes + bytes > limits.maxTransactionWriteBytes {
                    throw .tooLarge(
                        "bytes written by the transaction", limit: limits.maxTransactionWriteBytes,
                        actual: writtenBytes + bytes, key: key)
                }
            }
            written.insert(key)
            writtenBytes += bytes
        }
        switch op {
        case .get(let key, let mode, let wait):
            guard let mode else {
                let value = try await tx.get(key)
                return OpResult(
                    op: op.name, key: key, found: value != nil, value: value,
                    version: written.contains(key) ? nil : try await versionIfCurrent(key, value))
            }
            let (value, skipped) = try await lockRow(key, mode, wait, tx)
            var r = OpResult(op: op.name, key: key, found: value != nil, value: value)
            r.skipped = skipped
            if value != nil, !written.contains(key) { r.version = try await currentVersion(key)?.version }
            return r
        case .put(let key, let value, let ifVersion):
            if let ifVersion {
                _ = try await tx.lock(key, .forUpdate, wait: .block)
                let current = written.contains(key) ? nil : try await currentVersion(key)
                guard let current, current.version == ifVersion else {
                    throw ServerError.preconditionFailed(
                        "expected version \(ifVersion), found \(current.map { "\($0.version)" } ?? (written.contains(key) ? "an uncommitted write of this transaction" : "none"))",
                        key: key, current: current?.version)
                }
            }
            let wasWritten = written.contains(key)
            try noteWrite(key, value.count)
            try await write(key, value, wasWritten: wasWritten)
            return OpResult(op: op.name, key: key, versionIsCommit: true)
        case .create(let key, let value):
            try noteWrite(key, value.count)
            try await tx.insert(key, value)
            return OpResult(op: op.name, key: key, versionIsCommit: true)
        case .delete(let key):
            try noteWrite(key, 0)
            let existed = try await tx.delete(key)
            return OpResult(op: op.name, key: key, deleted: existed, versionIsCommit: true)
        case .deleteRange(let range):
            let rows = try await tx.scan(
                range, limit: limits.maxTransactionWrites + 1, reverse: false, lock: .forUpdate, wait: .block)
            if rows.count > limits.maxTransactionWrites {
                throw ServerError.tooLarge(
                    "keys in delete_range", limit: limits.maxTransactionWrites, actual: rows.count)
            }
            for row in rows {
                try noteWrite(row.key, 0)
                _ = try await tx.delete(row.key)
            }
            return OpResult(op: op.name, deleted: !rows.isEmpty, count: rows.count, versionIsCommit: true)
        case .incr(let key, let delta, let initial):
            let current = try await tx.lock(key, .forUpdate, wait: .block)
            let new = try Self.increment(current, by: delta, initial: initial, key: key)
            let wasWritten = written.contains(key)
            try noteWrite(key, new.count)
            try await write(key, new, wasWritten: current != nil || wasWritten)
            return OpResult(op: op.name, key: key, found: current != nil, value: new, versionIsCommit: true)
        case .scan(let range, let limit, let reverse, let keysOnly, let mode, let wait):
            // An unlocked scan reads one row more to know whether more follow; a locking scan must not lock a row
            // it does not return (a SKIP LOCKED consumer would hide it from the others), so it reads `limit` rows
            // and reports `more` when the page is full (there may be more).
            let rows = try await tx.scan(
                range, limit: mode == nil ? limit + 1 : limit, reverse: reverse, lock: mode, wait: wait)
            var items: [ScanItem] = []
            for row in rows.prefix(limit) {
                let version = written.contains(row.key) ? nil : try await versionIfCurrent(row.key, row.value)
                items.append(ScanItem(key: row.key, value: keysOnly ? nil : row.value, version: version))
            }
            var r = OpResult(op: op.name, count: items.count, items: items)
            r.more = mode == nil ? rows.count > limit : rows.count == limit
            return r
        case .assert(let key, let version, let exists):
            if tx.isReadOnly {
                throw ServerError(
                    .readOnlyTransaction, "assert locks the row (for share) and needs a read-write transaction",
                    key: key)
            }
            _ = try await tx.lock(key, .forShare, wait: .block)
            let current = written.contains(key) ? nil : try await currentVersion(key)
            let ok: Bool = if let version { current?.version == version } else { (current != nil) == exists }
            if !ok {
                throw ServerError.preconditionFailed(
                    "assert failed: expected \(version.map { "version \($0)" } ?? (exists == true ? "the key to exist" : "the key to be absent")), found \(current.map { "version \($0.version)" } ?? "none")",
                    key: key, current: current?.version)
            }
            return OpResult(op: op.name, key: key, found: current != nil, version: current?.version)
        }
    }

    /// Takes a row lock; for `skipLocked`, says whether the row was skipped (locked by another transaction):
    /// the engine returns nil both for a skipped row and for an absent one, and a row this transaction can see
    /// but did not get is a skipped one.
    func lockRow(_ key: Bytes, _ mode: RowLockMode, _ wait: LockWait, _ tx: any StoreTransaction) async throws -> (
        Bytes?, skipped: Bool
    ) {
        let value = try await tx.lock(key, mode, wait: wait)
        if value == nil, wait == .skipLocked, try await tx.get(key) != nil { return (nil, true) }
        return (value, false)
    }

    /// The key's current version when its current value is `value` (nil when absent or changed).
    func versionIfCurrent(_ key: Bytes, _ value: Bytes?) async throws -> UInt64? {
        guard let value, let current = try await db.get(key), current.value == value else { return nil }
        return current.version
    }

    /// `current` (absent: `initial`) plus `delta`, as decimal text. `42804` if the stored value is not a decimal
    /// Int64, `22003` on overflow.
    static func increment(_ current: Bytes?, by delta: Int64, initial: Int64, key: Bytes) throws(ServerError) -> Bytes {
        var old = initial
        if let current {
            guard let n = current.int64 else {
                throw ServerError(.datatypeMismatch, "the stored value is not a decimal 64-bit integer", key: key)
            }
            old = n
        }
        let (sum, overflow) = old.addingReportingOverflow(delta)
        if overflow { throw ServerError(.numericOutOfRange, "\(old) + \(delta) overflows a 64-bit integer", key: key) }
        return Bytes(sum)
    }
}
