import IsoKVCore
import IsoKVPostgres
import PostgresNIO
import Testing

/// Transactions: reads and writes, scans, savepoints, read-only and deferrable, the handle's life cycle.
@Suite("Postgres transactions", .enabled(if: PostgresTestEnvironment.isAvailable, PostgresTestEnvironment.skipReason))
struct PostgresTransactionTests {
    @Test func readOwnWritesCommitAndRollback() async throws {
        try await PostgresTestEnvironment.withStore { store in
            let tx = try await store.begin(.snapshot)
            try await tx.put("a", "1")
            try await tx.insert("b", "2")
            #expect(try await tx.get("a") == "1")
            #expect(try await store.get("a") == nil)  // not visible before commit
            #expect(try await tx.delete("b"))
            #expect(try await !tx.delete("b"))
            try await tx.commit()
            #expect(try await store.get("a")?.value == "1")
            #expect(try await store.get("b") == nil)

            let rolled = try await store.begin(.readCommitted)
            try await rolled.put("a", "changed")
            try await rolled.rollback()
            try await rolled.rollback()  // again: nothing
            #expect(try await store.get("a")?.value == "1")
            #expect(await isoKVError { _ = try await rolled.get("a") }?.code == .noActiveTransaction)
        }
    }

    @Test("commit twice, or use after commit: 25P01")
    func endedHandle() async throws {
        try await PostgresTestEnvironment.withStore { store in
            let tx = try await store.begin(.serializable)
            try await tx.put("a", "1")
            try await tx.commit()
            #expect(await isoKVError { try await tx.commit() }?.code == .noActiveTransaction)
            #expect(await isoKVError { try await tx.put("a", "2") }?.code == .noActiveTransaction)
            try await tx.rollback()
            #expect(try await store.get("a")?.value == "1")
        }
    }

    @Test("insert of a present key is 23505 and the transaction goes on")
    func insertDuplicate() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("u", "ada")
            for level in IsolationLevel.allCases {
                let tx = try await store.begin(level)
                let e = await isoKVError { try await tx.insert("u", "bob") }
                #expect(e?.code == .uniqueViolation, "\(level)")
                try await tx.insert(Bytes("v-\(level.rawValue)"), "ok")
                #expect(
                    await isoKVError { try await tx.insert(Bytes("v-\(level.rawValue)"), "again") }?.code
                        == .uniqueViolation)
                try await tx.commit()
            }
            #expect(try await store.get("u")?.value == "ada")
        }
    }

    @Test func scans() async throws {
        try await PostgresTestEnvironment.withStore { store in
            for i in 0..<10 { _ = try await store.put(Bytes("k\(i)"), Bytes("\(i)")) }
            _ = try await store.put("other", "x")
            try await store.transaction(.snapshot) { tx in
                #expect(try await tx.scan(prefix: "k").map(\.key) == (0..<10).map { Bytes("k\($0)") })
                #expect(try await tx.scan(prefix: "k", limit: 3).map(\.key) == ["k0", "k1", "k2"])
                #expect(try await tx.scan(prefix: "k", limit: 3, reverse: true).map(\.key) == ["k9", "k8", "k7"])
                #expect(try await tx.scan(KeyRange(from: "k3", to: "k6")).map(\.value) == ["3", "4", "5"])
                #expect(
                    try await tx.scan(KeyRange(from: "k3", to: "k6"), reverse: true).map(\.value) == ["5", "4", "3"])
                #expect(try await tx.scan(KeyRange(from: "k8")).map(\.key) == ["k8", "k9", "other"])
                #expect(try await tx.scan(KeyRange(to: "k1")).map(\.key) == ["k0"])
                #expect(try await tx.scan(.all, limit: 0).isEmpty)
                #expect(try await tx.scan(KeyRange(from: "z")).isEmpty)
                #expect(try await tx.scan().count == 11)
                // Own writes and deletes are seen by the scan.
                try await tx.put("k10", "10")
                try await tx.delete("k0")
                #expect(try await tx.scan(prefix: "k", limit: 2).map(\.key) == ["k1", "k10"])
                let e = await isoKVError {
                    _ = try await tx.scan(.all, limit: nil, reverse: false, lock: nil, wait: .skipLocked)
                }
                #expect(e?.code == .invalidInput)
            }
        }
    }

    @Test("savepoints: rollback to, release, unknown savepoints")
    func savepoints() async throws {
        try await PostgresTestEnvironment.withStore { store in
            let tx = try await store.begin(.readCommitted)
            try await tx.put("a", "1")
            let sp1 = try await tx.savepoint()
            try await tx.put("a", "2")
            let sp2 = try await tx.savepoint()
            try await tx.put("b", "2")
            try await tx.rollback(to: sp1)
            #expect(try await tx.get("a") == "1")
            #expect(try await tx.get("b") == nil)
            #expect(await isoKVError { try await tx.rollback(to: sp2) }?.code == .invalidSavepoint)  // gone
            try await tx.put("c", "3")
            try await tx.rollback(to: sp1)  // still usable
            #expect(try await tx.get("c") == nil)
            let sp3 = try await tx.savepoint()
            try await tx.put("d", "4")
            try await tx.release(sp3)
            #expect(await isoKVError { try await tx.release(sp3) }?.code == .invalidSavepoint)
            let foreign = Savepoint(transaction: TransactionID(rawValue: 999_999), id: sp1.id)
            #expect(await isoKVError { try await tx.rollback(to: foreign) }?.code == .invalidSavepoint)
            try await tx.commit()
            #expect(try await store.get("a")?.value == "1")
            #expect(try await store.get("d")?.value == "4")
        }
    }

    @Test("rolling back to a savepoint releases the row lock taken after it")
    func savepointReleasesLock() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("x", "0")
            let t1 = try await store.begin(.readCommitted)
            let sp = try await t1.savepoint()
            try await t1.lock("x", .forUpdate)
            let t2 = try await store.begin(.readCommitted)
            #expect(await isoKVError { try await t2.lock("x", .forUpdate, wait: .noWait) }?.code == .lockNotAvailable)
            try await t2.rollback()
            try await t1.rollback(to: sp)
            let t3 = try await store.begin(.readCommitted)
            #expect(try await t3.lock("x", .forUpdate, wait: .noWait) == "0")
            try await t3.commit()
            try await t1.commit()
        }
    }

    @Test("read-only transactions: reads work, writes and locks are 25006 and the transaction goes on")
    func readOnly() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("a", "1")
            for level in IsolationLevel.allCases {
                let tx = try await store.begin(level, readOnly: true)
                #expect(tx.isReadOnly)
                #expect(await isoKVError { try await tx.put("a", "2") }?.code == .readOnlyTransaction)
                #expect(await isoKVError { try await tx.insert("n", "2") }?.code == .readOnlyTransaction)
                #expect(await isoKVError { try await tx.delete("a") }?.code == .readOnlyTransaction)
                #expect(await isoKVError { try await tx.lock("a", .forShare) }?.code == .readOnlyTransaction)
                #expect(
                    await isoKVError { _ = try await tx.scan(.all, lock: .forUpdate) }?.code == .readOnlyTransaction)
                #expect(try await tx.get("a") == "1")
                try await tx.commit()
            }
            #expect(try await store.get("a")?.value == "1")
        }
    }

    @Test("25006 from PostgreSQL itself (a read-only session, as on a hot standby) maps to the same code")
    func readOnlyFromServer() async throws {
        let config = try PostgresTestEnvironment.configuration()
        try await PostgresStore.withStore(configuration: config) { store in _ = try await store.put("a", "1") }
        var readOnlySession = config
        readOnlySession.client.options.additionalStartupParameters.append(("default_transaction_read_only", "on"))
        try await PostgresStore.withStore(configuration: readOnlySession) { store throws in
            let a = try await store.get("a")
            #expect(a?.value == "1")
            #expect(await isoKVError { try await store.put("a", "2") }?.code == .readOnlyTransaction)
            #expect(await isoKVError { try await store.increment("n") }?.code == .readOnlyTransaction)
        }
        try await PostgresTestEnvironment.dropSchema(config.schema)
    }

    @Test("read uncommitted runs as read committed: no dirty read")
    func readUncommittedIsReadCommitted() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("x", "committed")
            let writer = try await store.begin(.readCommitted)
            try await writer.put("x", "dirty")
            let reader = try await store.begin(.readUncommitted)
            #expect(try await reader.get("x") == "committed")
            #expect(try await reader.scan(prefix: "x").map(\.value) == ["committed"])
            try await writer.commit()
            #expect(try await reader.get("x") == "dirty")  // read committed: the new commit is seen
            try await reader.commit()
        }
    }

    @Test("snapshot reads repeat; read committed sees each new commit")
    func snapshotVersusReadCommitted() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("x", "1")
            let snap = try await store.begin(.snapshot)
            let rc = try await store.begin(.readCommitted)
            #expect(try await snap.get("x") == "1")
            #expect(try await rc.get("x") == "1")
            _ = try await store.put("x", "2")
            _ = try await store.put("y", "new")
            #expect(try await snap.get("x") == "1")
            #expect(try await snap.scan().count == 1)  // no phantom
            #expect(try await rc.get("x") == "2")
            #expect(try await rc.scan().count == 2)
            try await snap.commit()
            try await rc.commit()
        }
    }

    @Test("deferrable read-only serializable transactions read and commit")
    func deferrable() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("a", "1")
            let tx = try await store.begin(.serializable, readOnly: true, deferrable: true)
            #expect(try await tx.get("a") == "1")
            #expect(try await tx.scan().count == 1)
            try await tx.commit()
        }
    }

    @Test("a deferrable reader waits for a safe snapshot while a serializable writer that could make it unsafe runs")
    func deferrableWaits() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("a", "1")
            _ = try await store.put("b", "1")
            let writer = try await store.begin(.serializable)
            #expect(try await writer.get("a") == "1")
            try await writer.put("b", "2")
            let reader = try await store.begin(.serializable, readOnly: true, deferrable: true)
            let readerID = reader.id
            let reading = Task { () -> [Bytes] in
                let values = try await reader.scan().map(\.value)
                try await reader.commit()
                return values
            }
            await store.waitUntilDeferred(readerID)
            try await writer.commit()
            // The snapshot taken when it began waiting proved safe (the writer had no conflict out to a committed
            // transaction), so PostgreSQL keeps it: the writer's change is not seen, and no 40001 can ever come.
            #expect(try await reading.value == ["1", "1"])
        }
    }

    @Test("a handle dropped without commit is rolled back and its connection reused")
    func droppedHandle() async throws {
        try await PostgresTestEnvironment.withStore({ $0.client.options.maximumConnections = 1 }) { store in
            for i in 0..<3 {
                var tx: PostgresTransaction? = try await store.begin(.readCommitted)
                try await tx!.put("a", Bytes("\(i)"))
                tx = nil
                _ = tx
            }
            // One connection in the pool: had it been returned inside a transaction, this would see "2" or hang.
            #expect(try await store.get("a") == nil)
            _ = try await store.put("a", "ok")
            #expect(try await store.get("a")?.value == "ok")
        }
    }

    @Test("transaction ids are unique")
    func transactionIDs() async throws {
        try await PostgresTestEnvironment.withStore { store in
            var ids: Set<TransactionID> = []
            for _ in 0..<5 {
                let tx = try await store.begin(.readCommitted)
                #expect(ids.insert(tx.id).inserted)
                try await tx.rollback()
            }
        }
    }
}
