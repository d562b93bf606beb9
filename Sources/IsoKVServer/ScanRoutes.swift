import Foundation
import HTTPTypes
import Hummingbird
import IsoKVCore

/// `GET /v1/kv?prefix=…` / `?start=…&end=…`: pages of a scan, all read from one snapshot.
///
/// The first request opens a *cursor*: a read-only snapshot transaction owned by its own task in the
/// ``TransactionRegistry`` (as an interactive transaction is). If more rows follow the page, the response's
/// `next_cursor` names it; each later page continues in the same snapshot after the last key returned. The cursor
/// is `<id>.<base64url(last key)>`: opaque to clients, and fetching the same cursor twice returns the same page.
///
/// What bounds a cursor's life: it ends with its last page, after `cursorIdleTimeout` (30 s) without a request,
/// at `cursorLifetime` (5 min) in any case, or when the server stops; at most `maxOpenCursors` (256) are open
/// (`503 53300` beyond). A cursor used after that gets `410 72000` (restart the scan without a cursor); a cursor
/// used with other scan parameters gets `400 22023`. While open it holds its snapshot, which keeps old versions
/// from garbage collection: that is why its life is short.
struct ScanRoutes {
    let state: ServerState
    var limits: ServerLimits { state.limits }

    func scan(_ request: Request) async throws -> Response {
        let query = try RequestReader.query(request)
        let forceBase64 = try query.forceBase64()
        let limit = try query.int("limit", in: 1...limits.maxScanLimit) ?? limits.defaultScanLimit
        let keysOnly = try query.bool("keys_only")
        let reverse = try query.bool("reverse")
        if query.has("revision") {
            throw ServerError.invalid(
                "reading at a chosen revision is not supported; page with next_cursor, which keeps the first page's snapshot"
            )
        }
        let range = try Op.makeRange(
            prefix: try query.bytes("prefix"), start: try query.bytes("start"),
            end: try query.bytes("end"), required: false, pointer: "?")
        let scope = Self.scope(range, reverse: reverse)
        let id: String
        var after: Bytes?
        if let cursor = try query.text("cursor") {
            let parsed = try Self.parseCursor(cursor)
            id = parsed.id
            after = parsed.after
            guard let openScope = state.registry.cursorScope(id) else {
                throw ServerError(
                    .snapshotTooOld,
                    "the cursor's snapshot is gone (finished, expired or the server restarted); restart the scan without a cursor"
                )
            }
            guard openScope == scope else {
                throw ServerError.invalid("the cursor belongs to a scan with other parameters", pointer: "?cursor")
            }
        } else {
            let db = state.db
            id = try state.registry.open(
                kind: .cursor, idleTimeout: limits.cursorIdleTimeout,
                lifetime: limits.cursorLifetime, cursorScope: scope
            ) {
                try await db.begin(.snapshot, readOnly: true)
            }
        }
        let revision = state.revision
        let pageRange = Self.remaining(range, after: after, reverse: reverse)
        let executor = OpExecutor(db: state.db, limits: limits)
        let (items, more) = try await state.registry.run(id, kind: .cursor) { tx, _ in
            let rows = try await tx.scan(pageRange, limit: limit + 1, reverse: reverse, lock: nil, wait: .block)
            var items: [ScanItem] = []
            for row in rows.prefix(limit) {
                items.append(
                    ScanItem(
                        key: row.key, value: keysOnly ? nil : row.value,
                        version: try await executor.versionIfCurrent(row.key, row.value)))
            }
            let more = rows.count > limit
            return ((items, more), more ? nil : .committed(revision: nil))
        }
        for item in items { state.observe(item.version) }
        let next: JSONValue = more ? .string(Self.cursor(id: id, after: items.last!.key)) : .null
        var headers = HTTPFields()
        headers[.isokvRevision] = String(revision)
        return JSONValue.object([
            ("items", .array(items.map { $0.json(forceBase64: forceBase64) })),
            ("revision", .uint(revision)),
            ("more", .bool(more)),
            ("next_cursor", next)
        ]).response(headers: headers)
    }

    /// The part of `range` after `after` (before it, when reverse).
    static func remaining(_ range: KeyRange, after: Bytes?, reverse: Bool) -> KeyRange {
        guard let after else { return range }
        var r = range
        if reverse { r.upper = after } else { r.lower = Bytes(after.bytes + [0]) }
        return r
    }

    static func scope(_ range: KeyRange, reverse: Bool) -> String {
        "\(range.lower.map { KeyText.base64($0) } ?? "-")|\(range.upper.map { KeyText.base64($0) } ?? "-")|\(reverse)"
    }

    static func cursor(id: String, after: Bytes) -> String {
        id + "." + base64url(after.bytes)
    }

    static func parseCursor(_ s: String) throws(ServerError) -> (id: String, after: Bytes) {
        let parts = s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 22, let after = unbase64url(String(parts[1])), !after.isEmpty else {
            throw .invalid("malformed cursor", pointer: "?cursor")
        }
        return (String(parts[0]), Bytes(after))
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ s: String) -> [UInt8]? {
        guard s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while t.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t).map { [UInt8]($0) }
    }
}
