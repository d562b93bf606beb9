import Foundation
import HTTPTypes
import Hummingbird
import IsoKVCore

/// Queue claims with leases (`/v1/queues/claim|ack|extend|release`): the jobs are the keys under a prefix, their
/// values the payloads.
///
/// A lease is a record the server keeps at a reserved key (`FF FF "isokv/lease/" + job key`) holding the lease's
/// end (Unix milliseconds) and its receipt, a random 64-bit number (`"<end>:<receipt>"`, ``LeaseRecord``). Every
/// queue operation first locks the *job's* row for update, so the lease record is only ever written under that
/// lock. Only the store contract is used, so queues work on every store.
/// - claim: one short read-committed transaction: scan the prefix with `FOR UPDATE SKIP LOCKED` (jobs another
///   claimer is looking at are skipped, so concurrent claims are disjoint), keep the rows whose lease is absent
///   or expired, write their lease records with one new receipt, commit. With `wait_ms`, an empty claim is
///   retried every 50 ms until something is claimed or the wait ends (or the server drains).
/// - ack (delete the job), extend (a new lease end and a new receipt), release (drop the lease): conditioned on the
///   receipt: a lease that expired or was claimed again → `412 IK412`; a job that is gone → `404 02000`.
/// Leases are durable like any write (they survive a restart). A job deleted with `DELETE /v1/kv/…` leaves its
/// lease record behind until the key is claimed again or acked.
struct QueueRoutes {
    let state: ServerState
    var limits: ServerLimits { state.limits }

    struct ClaimBody: Decodable {
        var prefix: String?
        var prefix_b64: String?
        var max: Int?
        var lease_ms: Int64?
        var wait_ms: Int64?
    }

    struct ReceiptBody: Decodable {
        var key: String?
        var key_b64: String?
        var receipt: String?
        var lease_ms: Int64?
    }

    func register(on router: Router<IsoKVRequestContext>) {
        router.post("/v1/queues/claim") { request, _ in try await claim(request) }
        router.post("/v1/queues/ack") { request, _ in try await settle(request, .ack) }
        router.post("/v1/queues/extend") { request, _ in try await settle(request, .extend) }
        router.post("/v1/queues/release") { request, _ in try await settle(request, .release) }
    }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    func claim(_ request: Request) async throws -> Response {
        let bytes = try await RequestReader.body(request, limit: limits.maxBodyBytes)
        let forceBase64 = try RequestReader.query(request).forceBase64()
        guard let body = try RequestReader.json(ClaimBody.self, from: bytes) else {
            throw ServerError.badEncoding("a JSON body is required")
        }
        let prefix = try KeyText.one(body.prefix, body.prefix_b64, name: "prefix", pointer: "/prefix")
        if prefix.isEmpty || Reserved.isReserved(prefix) {
            throw ServerError.invalid("prefix must not be empty or reserved", pointer: "/prefix")
        }
        let max = body.max ?? 1
        guard (1...limits.maxClaimItems).contains(max) else {
            throw ServerError.invalid("max must be in 1...\(limits.maxClaimItems)", pointer: "/max")
        }
        let lease = try leaseDuration(body.lease_ms)
        let wait = body.wait_ms ?? 0
        guard wait >= 0, wait <= limits.maxClaimWait.milliseconds else {
            throw ServerError.invalid("wait_ms must be in 0...\(limits.maxClaimWait.milliseconds)", pointer: "/wait_ms")
        }
        let deadline = ContinuousClock.now + .milliseconds(wait)
        while true {
            let items = try await claimOnce(prefix: prefix, max: max, lease: lease)
            if !items.isEmpty || ContinuousClock.now >= deadline || state.registry.isDraining {
                return JSONValue.object([
                    (
                        "items",
                        .array(
                            items.map { item in
                                .object(
                                    KeyText.fields(item.key, name: "key", forceBase64: forceBase64)
                                        + KeyText.fields(item.value, name: "value", forceBase64: forceBase64)
                                        + [
                                            ("receipt", .string(String(item.receipt))),
                                            ("lease_until", .int(item.leaseUntil))
                                        ])
                            })
                    )
                ]).response()
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private func leaseDuration(_ ms: Int64?) throws(ServerError) -> Int64 {
        guard let ms else { return limits.defaultLease.milliseconds }
        guard ms >= 1, ms <= limits.maxLease.milliseconds else {
            throw .invalid("lease_ms must be in 1...\(limits.maxLease.milliseconds)", pointer: "/lease_ms")
        }
        return ms
    }

    struct Claimed { var key: Bytes; var value: Bytes; var receipt: UInt64; var leaseUntil: Int64 }

    private func claimOnce(prefix: Bytes, max: Int, lease: Int64) async throws -> [Claimed] {
        let db = state.db
        let tx = try await db.begin(.readCommitted, readOnly: false)
        do {
            let now = Self.nowMillis()
            let record = LeaseRecord(until: now + lease, receipt: LeaseRecord.newReceipt())
            var claimed: [(Bytes, Bytes)] = []
            var range = Reserved.clamp(.prefix(prefix))
            scanning: while claimed.count < max {
                let rows = try await tx.scan(range, limit: 64, reverse: false, lock: .forUpdate, wait: .skipLocked)
                if rows.isEmpty { break }
                for row in rows {
                    if let held = LeaseRecord(try await tx.get(Reserved.leaseKey(row.key))), held.until > now {
                        continue
                    }
                    try await tx.put(Reserved.leaseKey(row.key), record.bytes)
                    claimed.append((row.key, row.value))
                    if claimed.count == max { break scanning }
                }
                range.lower = Bytes(rows.last!.key.bytes + [0])
            }
            guard !claimed.isEmpty else {
                try await tx.rollback()
                return []
            }
            let (version, _) = try await commitReportingVersion(tx)
            state.observe(version)
            state.metrics.commit("queue")
            return claimed.map {
                Claimed(key: $0.0, value: $0.1, receipt: record.receipt, leaseUntil: record.until)
            }
        } catch {
            try? await tx.rollback()
            state.noteError(error)
            throw error
        }
    }

    enum Settle { case ack, extend, release }

    func settle(_ request: Request, _ kind: Settle) async throws -> Response {
        let bytes = try await RequestReader.body(request, limit: limits.maxBodyBytes)
        guard let body = try RequestReader.json(ReceiptBody.self, from: bytes) else {
            throw ServerError.badEncoding("a JSON body is required")
        }
        let key = try KeyText.one(body.key, body.key_b64, name: "key", pointer: "/key")
        try RequestReader.check(key: key, limits: limits, pointer: "/key")
        guard let receiptText = body.receipt else {
            throw ServerError.invalid("receipt is required", pointer: "/receipt")
        }
        guard let receipt = UInt64(receiptText) else {
            throw ServerError.invalid("receipt is not one this server issued", pointer: "/receipt")
        }
        let lease = kind == .extend ? try leaseDuration(body.lease_ms) : 0
        let db = state.db
        var attempt = 1
        while true {
            let tx = try await db.begin(.readCommitted, readOnly: false)
            do {
                let job = try await tx.lock(key, .forUpdate, wait: .block)
                let record = LeaseRecord(try await tx.get(Reserved.leaseKey(key)))
                let now = Self.nowMillis()
                guard let record, record.receipt == receipt, record.until > now else {
                    throw ServerError.preconditionFailed(
                        record?.receipt == receipt
                            ? "the lease has expired"
                            : "the receipt does not hold the lease (expired and claimed again, or released)",
                        key: key, current: nil)
                }
                guard job != nil else { throw ServerError.notFound(key) }
                let response: Response
                switch kind {
                case .ack:
                    _ = try await tx.delete(key)
                    _ = try await tx.delete(Reserved.leaseKey(key))
                    response = Response(status: .noContent)
                case .release:
                    _ = try await tx.delete(Reserved.leaseKey(key))
                    response = Response(status: .noContent)
                case .extend:
                    let extended = LeaseRecord(until: now + lease, receipt: LeaseRecord.newReceipt())
                    try await tx.put(Reserved.leaseKey(key), extended.bytes)
                    let (version, _) = try await commitReportingVersion(tx)
                    state.observe(version)
                    state.metrics.commit("queue")
                    return JSONValue.object([
                        ("receipt", .string(String(extended.receipt))), ("lease_until", .int(extended.until))
                    ])
                    .response()
                }
                let (version, _) = try await commitReportingVersion(tx)
                state.observe(version)
                state.metrics.commit("queue")
                return response
            } catch {
                try? await tx.rollback()
                state.noteError(error)
                if let e = error as? IsoKVError, e.isRetryable, attempt < limits.internalRetries {
                    attempt += 1
                    try await RetryPolicy.default.sleepBeforeRetry(attempt - 1)
                    continue
                }
                throw error
            }
        }
    }
}

/// A lease record's value: `"<end in Unix ms>:<receipt>"`.
struct LeaseRecord {
    var until: Int64
    var receipt: UInt64

    init(until: Int64, receipt: UInt64) {
        self.until = until
        self.receipt = receipt
    }

    /// Parses a stored record; nil when absent or not in this form.
    init?(_ stored: Bytes?) {
        guard let text = stored?.string, let colon = text.firstIndex(of: ":"),
            let until = Int64(text[..<colon]), let receipt = UInt64(text[text.index(after: colon)...])
        else { return nil }
        self.init(until: until, receipt: receipt)
    }

    var bytes: Bytes { Bytes(Array("\(until):\(receipt)".utf8)) }

    /// A fresh receipt: 63 random bits (never 0).
    static func newReceipt() -> UInt64 { UInt64.random(in: 1...UInt64(Int64.max)) }
}
