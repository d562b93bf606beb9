import IsoKVCore
import IsoKVPostgres
import PostgresNIO
import Testing

/// The single-key operations, versions, limits, schema handling and lifecycle of ``PostgresStore``.
@Suite("Postgres store", .enabled(if: PostgresTestEnvironment.isAvailable, PostgresTestEnvironment.skipReason))
struct PostgresStoreTests {
    @Test func putGetAndVersions() async throws {
        try await PostgresTestEnvironment.withStore { store in
            #expect(try await store.get("a") == nil)
            let v1 = try await store.put("a", "1")
            #expect(try await store.get("a") == VersionedValue(value: "1", version: v1))
            let v2 = try await store.put("a", "2")
            #expect(v2 > v1)
            #expect(try await store.get("a")?.value == "2")
        }
    }

    @Test("versions increase strictly and are never reused, also after delete and re-create")
    func versionsNeverReused() async throws {
        try await PostgresTestEnvironment.withStore { store in
            var seen: Set<UInt64> = []
            var last: UInt64 = 0
            for round in 0..<5 {
                for step in 0..<3 {
                    let v = try await store.put("k", Bytes("\(round).\(step)"))
                    #expect(v > last, "round \(round) step \(step): \(v) after \(last)")
                    #expect(seen.insert(v).inserted)
                    last = v
                }
                #expect(try await store.delete("k"))
                let created = try await store.put("k", "new", ifAbsent: true)
                #expect(created > last)
                #expect(seen.insert(created).inserted)
                last = created
                #expect(try await store.delete("k"))
                // Other keys take versions from the same sequence: never one of "k"'s.
                #expect(seen.insert(try await store.put(Bytes("other\(round)"), "x")).inserted)
            }
            // Inside transactions too: a rolled-back write burns its number, the next commit gets a higher one.
            let tx = try await store.begin(.readCommitted)
            try await tx.put("k", "rolled back")
            try await tx.rollback()
            #expect(try await store.put("k", "after") > last)
        }
    }

    @Test func putIfVersion() async throws {
        try await PostgresTestEnvironment.withStore { store in
            let v1 = try await store.put("doc", "a")
            let v2 = try await store.put("doc", "b", ifVersion: v1)
            #expect(v2 > v1)
            #expect(try await store.get("doc") == VersionedValue(value: "b", version: v2))
            let stale = await isoKVError { try await store.put("doc", "c", ifVersion: v1) }
            #expect(stale?.code == .versionMismatch)
            #expect(stale?.key == "doc")
            #expect(await isoKVError { try await store.put("absent", "c", ifVersion: v1) }?.code == .versionMismatch)
            #expect(await isoKVError { try await store.put("doc", "c", ifVersion: .max) }?.code == .versionMismatch)
            #expect(try await store.get("doc")?.value == "b")
        }
    }

    @Test func putIfAbsentAndDelete() async throws {
        try await PostgresTestEnvironment.withStore { store in
            let v = try await store.put("u", "ada", ifAbsent: true)
            #expect(await isoKVError { try await store.put("u", "bob", ifAbsent: true) }?.code == .uniqueViolation)
            #expect(try await store.get("u") == VersionedValue(value: "ada", version: v))
            _ = try await store.put("u", "bob", ifAbsent: false)
            #expect(try await store.get("u")?.value == "bob")
            #expect(try await store.delete("u"))
            #expect(try await !store.delete("u"))
            let w = try await store.put("u", "carol")
            #expect(await isoKVError { try await store.delete("u", ifVersion: w - 1) }?.code == .versionMismatch)
            #expect(await isoKVError { try await store.delete("u", ifVersion: .max) }?.code == .versionMismatch)
            try await store.delete("u", ifVersion: w)
            #expect(try await store.get("u") == nil)
            #expect(await isoKVError { try await store.delete("u", ifVersion: w) }?.code == .versionMismatch)
        }
    }

    @Test func increment() async throws {
        try await PostgresTestEnvironment.withStore { store in
            #expect(try await store.increment("n") == 1)
            #expect(try await store.increment("n", by: 41) == 42)
            #expect(try await store.increment("n", by: -50) == -8)
            #expect(try await store.get("n")?.value == "-8")
            _ = try await store.put("plus", "+5")
            #expect(try await store.increment("plus") == 6)
            for bad: Bytes in ["abc", "1.5", " 7", "", "99999999999999999999", Bytes([0xff, 0x31])] {
                _ = try await store.put("bad", bad)
                let e = await isoKVError { try await store.increment("bad") }
                #expect(e?.code == .invalidInput, "\(bad)")
                #expect(try await store.get("bad")?.value == bad)
            }
            _ = try await store.put("big", Bytes(Int64.max - 1))
            #expect(try await store.increment("big") == .max)
            let overflow = await isoKVError { try await store.increment("big") }
            #expect(overflow?.code == .numericOutOfRange)
            #expect(try await store.get("big")?.value == Bytes(Int64.max))
            _ = try await store.put("small", Bytes(Int64.min))
            #expect(await isoKVError { try await store.increment("small", by: -1) }?.code == .numericOutOfRange)
        }
    }

    @Test("update: compare-and-set loop from the contract")
    func updateLoop() async throws {
        try await PostgresTestEnvironment.withStore { store in
            let first = try await store.update("p") { _ in "a" }
            let second = try await store.update("p") { old in Bytes((old?.string ?? "") + "b") }
            let third = try await store.update("p") { _ in nil }
            #expect(first == "a")
            #expect(second == "ab")
            #expect(third == nil)
            #expect(try await store.get("p") == nil)
        }
    }

    @Test("limits are checked before any SQL, with the engine's codes")
    func limits() async throws {
        try await PostgresTestEnvironment.withStore({
            $0.limits = Limits(maxKeySize: 8, maxValueSize: 16, maxWritesPerTransaction: 3)
        }) { store in
            #expect(await isoKVError { _ = try await store.get("") }?.code == .invalidInput)
            #expect(await isoKVError { try await store.put("123456789", "v") }?.code == .limitExceeded)
            #expect(
                await isoKVError { try await store.put("k", Bytes([UInt8](repeating: 1, count: 17))) }?.code
                    == .limitExceeded)
            #expect(await isoKVError { try await store.increment("") }?.code == .invalidInput)
            let tx = try await store.begin(.readCommitted)
            for k in ["a", "b", "c"] { try await tx.put(Bytes(k), "1") }
            try await tx.put("a", "2")  // the same key again does not count
            let e = await isoKVError { try await tx.put("d", "1") }
            #expect(e?.code == .limitExceeded)
            #expect(
                await isoKVError { _ = try await tx.scan(.all, limit: -1, reverse: false, lock: nil, wait: .block) }?
                    .code == .invalidInput)
            #expect(
                await isoKVError {
                    _ = try await tx.scan(.all, limit: 2_000_000, reverse: false, lock: nil, wait: .block)
                }?.code == .invalidInput)
            // Found before SQL: the transaction is still usable.
            try await tx.commit()
            #expect(try await store.get("a")?.value == "2")
        }
    }

    @Test("binary keys sort as memcmp, shorter prefix first, as Bytes does")
    func binaryKeyOrder() async throws {
        try await PostgresTestEnvironment.withStore { store in
            var keys: Set<Bytes> = [
                Bytes([0]), Bytes([0, 0]), Bytes([0xff]), Bytes([0xff, 0]), Bytes([0x7f]), Bytes([0x80]), "a", "ab", "b"
            ]
            var rng = SystemRandomNumberGenerator()
            while keys.count < 60 {
                keys.insert(
                    Bytes((0..<Int.random(in: 1...4, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }))
            }
            for k in keys { _ = try await store.put(k, k) }
            let rows = try await store.transaction(.snapshot) { try await $0.scan() }
            #expect(rows.map(\.key) == keys.sorted())
            let reversed = try await store.transaction(.snapshot) { try await $0.scan(.all, reverse: true) }
            #expect(reversed.map(\.key) == keys.sorted().reversed())
            let prefixed = try await store.transaction(.snapshot) { try await $0.scan(prefix: Bytes([0xff])) }
            #expect(prefixed.map(\.key) == keys.sorted().filter { $0.bytes.first == 0xff })
        }
    }

    @Test("a schema with an unknown version is refused")
    func schemaVersionRefused() async throws {
        let schema = PostgresTestEnvironment.freshSchema()
        let config = try PostgresTestEnvironment.configuration(schema: schema)
        try await PostgresStore.withStore(configuration: config) { store in _ = try await store.put("k", "v") }
        try await PostgresTestEnvironment.withRawConnection { c in
            try await c.query(
                PostgresQuery(unsafeSQL: "UPDATE \(schema).isokv_meta SET value = 99 WHERE name = 'schema_version'"),
                logger: .init(label: "t"))
        }
        let refused = await isoKVError { _ = try await PostgresStore(configuration: config) }
        #expect(refused?.code == .unsupportedFormat)
        #expect(refused?.message.contains("99") == true)
        try await PostgresTestEnvironment.withRawConnection { c in
            try await c.query(PostgresQuery(unsafeSQL: "DELETE FROM \(schema).isokv_meta"), logger: .init(label: "t"))
        }
        #expect(await isoKVError { _ = try await PostgresStore(configuration: config) }?.code == .unsupportedFormat)
        try await PostgresTestEnvironment.dropSchema(schema)
        // Missing schema with createSchema off: 42P01, nothing created.
        var noCreate = config
        noCreate.createSchema = false
        #expect(await isoKVError { _ = try await PostgresStore(configuration: noCreate) }?.code.rawValue == "42P01")
        // Created again from scratch, the data is gone and the version row is back.
        let recreated = try await PostgresStore.withStore(configuration: config) { store in try await store.get("k") }
        #expect(recreated == nil)
        try await PostgresTestEnvironment.dropSchema(schema)
    }

    @Test("two stores starting at once on one new schema both succeed")
    func parallelSchemaCreation() async throws {
        let config = try PostgresTestEnvironment.configuration()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<4 {
                group.addTask {
                    try await PostgresStore.withStore(configuration: config) { store in
                        _ = try await store.put(Bytes("k\(i)"), "v")
                    }
                }
            }
            try await group.waitForAll()
        }
        try await PostgresStore.withStore(configuration: config) { store in
            let rows = try await store.transaction(.snapshot) { try await $0.scan() }
            #expect(rows.count == 4)
        }
        try await PostgresTestEnvironment.dropSchema(config.schema)
    }

    @Test("bad configurations are typed errors")
    func badConfiguration() async throws {
        #expect(await isoKVError { _ = try PostgresStore.Configuration(url: "http://x") }?.code == .invalidInput)
        #expect(
            await isoKVError { _ = try PostgresStore.Configuration(url: "postgres://h/db?sslmode=maybe") }?.code
                == .invalidInput)
        #expect(
            await isoKVError { _ = try PostgresStore.Configuration(url: "postgres://h/db?color=red") }?.code
                == .invalidInput)
        let parsed = try PostgresStore.Configuration(url: "postgres://ann:p%40ss@db.example:6543/app?schema=kv")
        #expect(parsed.client.username == "ann")
        #expect(parsed.client.password == "p@ss")
        #expect(parsed.client.port == 6543)
        #expect(parsed.client.database == "app")
        #expect(parsed.schema == "kv")
        for bad in ["Upper", "1abc", "has-dash", "", "a\"b"] {
            let e = await isoKVError {
                _ = try await PostgresStore(configuration: PostgresTestEnvironment.configuration(schema: bad))
            }
            #expect(e?.code == .invalidInput, "\(bad)")
        }
    }

    @Test("after shutdown every operation is 57P01")
    func shutdown() async throws {
        let config = try PostgresTestEnvironment.configuration()
        let store = try await PostgresStore(configuration: config)
        _ = try await store.put("k", "v")
        await store.shutdown()
        await store.shutdown()  // idempotent
        #expect(await isoKVError { _ = try await store.get("k") }?.code == .databaseClosed)
        #expect(await isoKVError { _ = try await store.begin(.snapshot) }?.code == .databaseClosed)
        try await PostgresTestEnvironment.dropSchema(config.schema)
    }

    @Test("shutdown with a transaction still open returns; the transaction then fails and rolls back")
    func shutdownWithOpenTransaction() async throws {
        let config = try PostgresTestEnvironment.configuration()
        let store = try await PostgresStore(configuration: config)
        _ = try await store.put("k", "v")
        let tx = try await store.begin(.readCommitted)
        try await tx.put("k", "uncommitted")
        await store.shutdown()
        let e = await isoKVError { try await tx.put("k", "again") }
        #expect(e?.code == .connectionFailure || e?.code == .databaseClosed)
        #expect(await isoKVError { try await tx.commit() }?.code == .transactionAborted)
        try await tx.rollback()
        let after = try await PostgresStore.withStore(configuration: config) { try await $0.get("k") }
        #expect(after?.value == "v")
        try await PostgresTestEnvironment.dropSchema(config.schema)
    }

    @Test("an unreachable server is 08006 within the connection timeout")
    func unreachable() async throws {
        var config = try PostgresStore.Configuration(url: "postgres://postgres@127.0.0.1:1/postgres")
        config.connectionTimeout = .milliseconds(500)
        let e = await isoKVError { _ = try await PostgresStore(configuration: config) }
        #expect(e?.code == .connectionFailure)
    }
}
