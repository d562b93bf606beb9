import Foundation
import GRDB

/// SQLite through GRDB: a `DatabasePool` (WAL: readers run beside the one writer) on a temporary file with
/// `synchronous = OFF` (no fsync, as the in-memory engine has none), one table `kv(k TEXT PRIMARY KEY, v BLOB)
/// WITHOUT ROWID` and a `counter(n INTEGER)` row. GRDB runs each call on its own queues; the caller suspends.
public final class SQLiteBaselineStore: BaselineStore {
    public let name = "sqlite"
    let pool: DatabasePool
    let directory: URL

    public init(keys: Int, valueSize: Int) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "isokv-baseline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = OFF") }
        pool = try DatabasePool(
            path: directory.appendingPathComponent("baseline.sqlite").path, configuration: configuration)
        let value = Data(repeating: 0x61, count: valueSize)
        try await pool.write { db in
            try db.execute(sql: "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
            try db.execute(sql: "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
            try db.execute(sql: "INSERT INTO counter (id, n) VALUES (1, 0)")
            let insert = try db.makeStatement(sql: "INSERT INTO kv (k, v) VALUES (?, ?)")
            for i in 0..<keys { try insert.execute(arguments: ["user\(i)", value]) }
        }
    }

    /// Closes the pool and removes the temporary file.
    public func close() throws {
        try pool.close()
        try? FileManager.default.removeItem(at: directory)
    }

    public func read(_ key: Int) async throws {
        _ = try await pool.read { db in
            try Data.fetchOne(db, sql: "SELECT v FROM kv WHERE k = ?", arguments: ["user\(key)"])
        }
    }

    public func update(_ key: Int, _ value: [UInt8]) async throws {
        let data = Data(value)
        try await pool.write { db in
            try db.execute(sql: "UPDATE kv SET v = ? WHERE k = ?", arguments: [data, "user\(key)"])
        }
    }

    public func increment() async throws {
        try await pool.write { db in try db.execute(sql: "UPDATE counter SET n = n + 1 WHERE id = 1") }
    }

    public func counter() async throws -> Int64 {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT n FROM counter WHERE id = 1") ?? -1 }
    }
}
