import IsoKVCore
import NIOCore
import PostgresNIO

// The prepared statements of the point operations. Table and sequence names are unqualified: every connection of a
// store has `search_path` set to the store's schema (a startup parameter), so one statement text serves every store
// and postgres-nio prepares each once per connection. Scans, whose text depends on the range, order and lock
// clause, are bound queries instead (see PostgresTransaction+Scan.swift). DESIGN.md lists each operation's SQL.

extension Bytes {
    /// The bytes as a bind value (`bytea`).
    var buffer: ByteBuffer { ByteBuffer(bytes: bytes) }
    init(_ buffer: ByteBuffer) { self.init(buffer.readableBytesView) }
}

/// The version as PostgreSQL's `bigint`; nil if it cannot be one (so no row can have it).
func postgresVersion(_ version: UInt64) -> Int64? { version <= UInt64(Int64.max) ? Int64(version) : nil }

/// `SELECT v, version … WHERE k = $1`: the value and version of one key.
struct GetStatement: PostgresPreparedStatement {
    static let sql = "SELECT v, version FROM isokv_kv WHERE k = $1"
    static let bindingDataTypes: [PostgresDataType] = [.bytea]
    typealias Row = (ByteBuffer, Int64)
    let key: Bytes
    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 1); b.append(key.buffer); return b
    }
    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Upsert with a fresh version: `put`.
struct PutStatement: PostgresPreparedStatement {
    static let sql = """
        INSERT INTO isokv_kv AS kv (k, v) VALUES ($1, $2)
        ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, version = nextval('isokv_version')
        RETURNING kv.version
        """
    static let bindingDataTypes: [PostgresDataType] = [.bytea, .bytea]
    typealias Row = Int64
    let key: Bytes, value: Bytes
    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 2); b.append(key.buffer); b.append(value.buffer); return b
    }
    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int64.self) }
}

/// Compare-and-set on the version: `put(_:_:ifVersion:)`. No row returned: the version did not match (or no key).
struct PutIfVersionStatement: PostgresPreparedStatement {
    static let sql = """
        UPDATE isokv_kv SET v = $2, version = nextval('isokv_version') WHERE k = $1 AND version = $3
        RETURNING version
        """
    static let bindingDataTypes: [PostgresDataType] = [.bytea, .bytea, .int8]
    typealias Row = Int64
    let key: Bytes, value: Bytes, version: Int64
    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 3); b.append(key.buffer); b.append(value.buffer); b.append(version)
        return b
    }
    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int64.self) }
}

/// Create if absent: `put(_:_:ifAbsent: true)` and `insert`. No row returned: the key exists (`23505`). Uses
/// `ON CONFLICT DO NOTHING` rather than a failing INSERT so that the duplicate does not abort the transaction.
struct InsertStatement: PostgresPreparedStatement {
    static let sql = """
        INSERT INTO isokv_kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING RETURNING version
        """
    static let bindingDataTypes: [PostgresDataType] = [.bytea, .bytea]
    typealias Row = Int64
    let key: Bytes, value: Bytes
    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 2); b.append(key.buffer); b.append(value.buffer); return b
    }
    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int64.self) }
}

/// `delete`: one row returned if the key was present, with the deletion's own version (a tombstone number, taken
/// with the row lock held, so it orders the delete among the key's writes).
struct DeleteStatement: PostgresPreparedStatement {
    static let sql = "DELETE FROM isokv_kv WHERE k = $1 RETURNING nextval('isokv_version')"
    static let bindingDataTypes: [PostgresDataType] = [.bytea]
    typealias Row = Int64
    let key: Bytes
    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 1); b.append(key.buffer); return b
    }
    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int64.self) }
}

/// `delete(_:ifVersion:)`: no row returned means `IK412`.
struct DeleteIfVersionStatement: PostgresPreparedStatement {
    static let sql = "DELETE FROM isokv_kv WHERE k = $1 AND version = $2 RETURNING version"
    static let bindingDataTypes: [PostgresDataType] = [.bytea, .int8]
    typealias Row = Int64
    let key: Bytes, version: Int64
    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 2); b.append(key.buffer); b.append(version); return b
    }
    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int64.self) }
}

/// `increment`: one upsert. `isokv_int` (created with the schema) parses the stored decimal text or raises `22023`;
/// the `bigint` addition raises `22003` on overflow. Returns the new value as stored (decimal text).
struct IncrementStatement: PostgresPreparedStatement {
    static let sql = """
        INSERT INTO isokv_kv AS kv (k, v) VALUES ($1, convert_to($2::bigint::text, 'UTF8'))
        ON CONFLICT (k) DO UPDATE
            SET v = convert_to((isokv_int(kv.v) + $2::bigint)::text, 'UTF8'), version = nextval('isokv_version')
        RETURNING kv.v
        """
    static let bindingDataTypes: [PostgresDataType] = [.bytea, .int8]
    typealias Row = ByteBuffer
    let key: Bytes, delta: Int64
    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 2); b.append(key.buffer); b.append(delta); return b
    }
    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(ByteBuffer.self) }
}

/// `lock(_:_:wait:)`: `SELECT v … FOR UPDATE|FOR SHARE [NOWAIT|SKIP LOCKED]`, one type per clause (a prepared
/// statement's text is static).
protocol LockStatement: PostgresPreparedStatement where Row == ByteBuffer {
    init(key: Bytes)
    var key: Bytes { get }
}

extension LockStatement {
    static var bindingDataTypes: [PostgresDataType] { [.bytea] }
    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 1); b.append(key.buffer); return b
    }
    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(ByteBuffer.self) }
}

struct LockForUpdate: LockStatement {
    static let sql = "SELECT v FROM isokv_kv WHERE k = $1 FOR UPDATE"
    let key: Bytes
}
struct LockForUpdateNoWait: LockStatement {
    static let sql = "SELECT v FROM isokv_kv WHERE k = $1 FOR UPDATE NOWAIT"
    let key: Bytes
}
struct LockForUpdateSkipLocked: LockStatement {
    static let sql = "SELECT v FROM isokv_kv WHERE k = $1 FOR UPDATE SKIP LOCKED"
    let key: Bytes
}
struct LockForShare: LockStatement {
    static let sql = "SELECT v FROM isokv_kv WHERE k = $1 FOR SHARE"
    let key: Bytes
}
struct LockForShareNoWait: LockStatement {
    static let sql = "SELECT v FROM isokv_kv WHERE k = $1 FOR SHARE NOWAIT"
    let key: Bytes
}
struct LockForShareSkipLocked: LockStatement {
    static let sql = "SELECT v FROM isokv_kv WHERE k = $1 FOR SHARE SKIP LOCKED"
    let key: Bytes
}

extension PostgresConnection {
    /// Runs `statement` and collects its rows.
    func rows<S: PostgresPreparedStatement>(_ statement: S) async throws -> [S.Row] {
        var out: [S.Row] = []
        for try await row in try await execute(statement, logger: HeldConnection.logger) { out.append(row) }
        return out
    }
}
