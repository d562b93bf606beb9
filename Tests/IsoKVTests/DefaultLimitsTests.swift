@_spi(Testing) import IsoKV
import IsoKVStorage
import IsoKVTestSupport
import Testing

/// The default `Limits` on every entry point at their exact sizes: the largest allowed passes, one more is refused
/// with the documented code (54000 for sizes, 22023 for a scan limit or an empty key, 22003 for an increment
/// overflow), and a refused operation leaves the transaction usable and writes nothing.
@Suite("Default limits")
struct DefaultLimitsTests {
    static let limits = Limits()
    static let maxKey = Bytes([UInt8](repeating: 0x6B, count: Limits().maxKeySize))
    static let longKey = Bytes([UInt8](repeating: 0x6B, count: Limits().maxKeySize + 1))
    static let maxValue = Bytes([UInt8](repeating: 0x76, count: Limits().maxValueSize))
    static let longValue = Bytes([UInt8](repeating: 0x76, count: Limits().maxValueSize + 1))

    @Test func defaultsAreTheDocumentedOnes() {
        #expect(Self.limits.maxKeySize == 4096)
        #expect(Self.limits.maxValueSize == 1 << 20)
        #expect(Self.limits.maxWritesPerTransaction == 100_000)
        #expect(Self.limits.maxScanLimit == 1_000_000)
    }

    @Test func keyAndValueSizesOnEveryWriteEntryPoint() async throws {
        let db = makeDatabase()
        // Single-key operations.
        let v = try await db.put(Self.maxKey, Self.maxValue)
        #expect(try await db.get(Self.maxKey)?.value == Self.maxValue)
        await expectCode(.limitExceeded) { try await db.put(Self.longKey, "v") }
        await expectCode(.limitExceeded) { try await db.put("k", Self.longValue) }
        await expectCode(.limitExceeded) { try await db.put(Self.maxKey, Self.longValue, ifVersion: v) }
        await expectCode(.limitExceeded) { try await db.put(Self.longKey, "v", ifAbsent: true) }
        await expectCode(.limitExceeded) { try await db.put("new", Self.longValue, ifAbsent: true) }
        await expectCode(.limitExceeded) { try await db.increment(Self.longKey, by: 1) }
        await expectCode(.limitExceeded) { try await db.update("u") { _ in Self.longValue } }
        await expectCode(.invalidInput) { try await db.put("", "v") }
        for key: Bytes in ["k", "new", "u"] { #expect(try await db.get(key) == nil, "\(key)") }
        #expect(try await db.get(Self.maxKey)?.version == v)
        // In a transaction: each refusal fails only the statement.
        let tx = try await db.begin(.snapshot)
        await expectCode(.limitExceeded) { try await tx.put(Self.longKey, "v") }
        await expectCode(.limitExceeded) { try await tx.put("k", Self.longValue) }
        await expectCode(.limitExceeded) { try await tx.insert(Self.longKey, "v") }
        await expectCode(.limitExceeded) { try await tx.insert("k", Self.longValue) }
        await expectCode(.limitExceeded) { try await tx.lock(Self.longKey, .forUpdate) }
        try await tx.put("k", Self.maxValue)
        try await tx.commit()
        #expect(try await value(db, "k") == Self.maxValue)
    }

    @Test func scanLimitAtTheDefault() async throws {
        let db = makeDatabase()
        try await seed(db, [("a", "1"), ("b", "2")])
        let tx = try await db.begin(.snapshot)
        #expect(try await tx.scan(.all, limit: Self.limits.maxScanLimit).count == 2)
        await expectCode(.invalidInput) { try await tx.scan(.all, limit: Self.limits.maxScanLimit + 1) }
        await expectCode(.invalidInput) { try await tx.scan(.all, limit: -1) }
        #expect(try await tx.scan(.all, limit: 0).isEmpty)
        try await tx.commit()
    }

    @Test func incrementOverflowsInBothDirections() async throws {
        let db = makeDatabase()
        #expect(try await db.increment("hi", by: Int64.max) == Int64.max)
        await expectCode(.numericOutOfRange) { try await db.increment("hi", by: 1) }
        #expect(try await value(db, "hi") == Bytes(Int64.max))
        #expect(try await db.increment("lo", by: Int64.min) == Int64.min)
        await expectCode(.numericOutOfRange) { try await db.increment("lo", by: -1) }
        #expect(try await value(db, "lo") == Bytes(Int64.min))
    }

    /// 100 000 distinct keys in one transaction pass; the next distinct key is refused, rewriting a key already
    /// written is not, and the transaction still commits all of them.
    @Test func writesPerTransactionAtTheDefault() async throws {
        let db = makeDatabase()
        let n = Self.limits.maxWritesPerTransaction
        let tx = try await db.begin(.readCommitted)
        for i in 0..<n { try await tx.put(Bytes("w\(i)"), "x") }
        await expectCode(.limitExceeded) { try await tx.put("one-more", "x") }
        await expectCode(.limitExceeded) { try await tx.insert("one-more", "x") }
        try await tx.put("w0", "again")
        try await tx.commit()
        #expect(db.statistics().chains == n)
        #expect(try await value(db, "w0") == "again")
        #expect(try await value(db, "one-more") == nil)
    }

    /// A durable commit whose WAL record would pass the format's 64 MiB payload bound (65 values of the default
    /// maximum size) is refused at commit with 54000; nothing of it is visible or recovered, and the store keeps
    /// accepting commits (a refused record is not a failed log).
    @Test func recordSizeAtTheDefaultOnADurableDatabase() async throws {
        let dir = TemporaryDirectory("limits-record")
        defer { dir.remove() }
        var db = try await Database.open(path: dir.path, options: durableOptions(.fsync))
        let perRecord = WALFormat.maxPayloadBytes / Self.limits.maxValueSize + 1
        let tx = try await db.begin(.snapshot)
        for i in 0..<perRecord { try await tx.put(Bytes("big\(i)"), Self.maxValue) }
        await expectCode(.limitExceeded) { try await tx.commit() }
        try? await tx.rollback()
        #expect(try await db.get("big0") == nil)
        let after = try await db.put("small", "ok")
        await db.close()
        db = try await Database.open(path: dir.path, options: durableOptions(.fsync))
        #expect(try await db.get("big0") == nil)
        #expect(try await db.get("small")?.version == after)
        await db.close()
    }

    /// Serializable reads past the default per-transaction point-lock bound (10 000) escalate to one range lock,
    /// exactly at the bound: 10 000 reads keep point locks, the next one escalates.
    @Test func rangeLockEscalationAtTheDefault() async throws {
        let db = makeDatabase()
        let bound = SerializableLimits().maxPointLocksPerTransaction
        #expect(bound == 10_000)
        let tx = try await db.begin(.serializable)
        for i in 0..<bound { _ = try await tx.get(Bytes("r\(i)")) }
        var s = db.statistics().serializable
        #expect(s.escalations == 0 && s.pointLocks == bound, "\(s)")
        _ = try await tx.get("one-more")
        s = db.statistics().serializable
        #expect(s.escalations == 1 && s.rangeLocks == 1, "\(s)")
        try await tx.commit()
    }
}
