import IsoKVCore
import IsoKVPostgres
import Testing

/// Every SQLSTATE the store can provoke arrives as the engine's ``IsoKVError`` code.
@Suite("Postgres error codes", .enabled(if: PostgresTestEnvironment.isAvailable, PostgresTestEnvironment.skipReason))
struct PostgresErrorCodeTests {
    @Test("40001 at repeatable read: first updater wins; then 25P02 until rollback")
    func firstUpdaterWins() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("x", "0")
            let t1 = try await store.begin(.snapshot)
            #expect(try await t1.get("x") == "0")
            _ = try await store.put("x", "1")  // a concurrent committed update
            let e = await isoKVError { try await t1.put("x", "2") }
            #expect(e?.code == .serializationFailure)
            #expect(e?.isRetryable == true)
            #expect(e?.key == "x")
            let after = await isoKVError { _ = try await t1.get("x") }
            #expect(after?.code == .transactionAborted)
            #expect(after?.message.contains("40001") == true)
            #expect(await isoKVError { try await t1.commit() }?.code == .transactionAborted)
            try await t1.rollback()
            #expect(try await store.get("x")?.value == "1")
        }
    }

    @Test("40001 at serializable: write skew is refused")
    func serializableWriteSkew() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("doctor/alice", "on")
            _ = try await store.put("doctor/bob", "on")
            let t1 = try await store.begin(.serializable)
            let t2 = try await store.begin(.serializable)
            #expect(try await t1.scan(prefix: "doctor/").filter { $0.value == "on" }.count == 2)
            #expect(try await t2.scan(prefix: "doctor/").filter { $0.value == "on" }.count == 2)
            try await t1.put("doctor/alice", "off")
            try await t2.put("doctor/bob", "off")
            try await t1.commit()
            let e = await isoKVError { try await t2.commit() }
            #expect(e?.code == .serializationFailure)
            #expect(try await store.get("doctor/bob")?.value == "on")
        }
    }

    @Test("write skew occurs at repeatable read (snapshot isolation)")
    func repeatableReadWriteSkew() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("doctor/alice", "on")
            _ = try await store.put("doctor/bob", "on")
            let t1 = try await store.begin(.snapshot)
            let t2 = try await store.begin(.snapshot)
            _ = try await t1.scan(prefix: "doctor/")
            _ = try await t2.scan(prefix: "doctor/")
            try await t1.put("doctor/alice", "off")
            try await t2.put("doctor/bob", "off")
            try await t1.commit()
            try await t2.commit()
            #expect(try await store.get("doctor/alice")?.value == "off")
            #expect(try await store.get("doctor/bob")?.value == "off")
        }
    }

    @Test("40P01: one transaction of a lock cycle is the deadlock victim")
    func deadlock() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("a", "0")
            _ = try await store.put("b", "0")
            let t1 = try await store.begin(.readCommitted)
            let t2 = try await store.begin(.readCommitted)
            try await t1.lock("a", .forUpdate)
            try await t2.lock("b", .forUpdate)
            let t1ID = t1.id
            let waiter = Task { () -> IsoKVError? in
                let e = await isoKVError { try await t1.put("b", "1") }
                if e == nil { try? await t1.commit() } else { try? await t1.rollback() }
                return e
            }
            await store.waitUntilWaiting(t1ID, on: "b")
            let closer = await isoKVError { try await t2.put("a", "2") }
            if closer == nil { try await t2.commit() } else { try await t2.rollback() }
            let waited = await waiter.value
            let codes = [closer?.code, waited?.code].compactMap { $0 }
            #expect(
                codes == [.deadlockDetected],
                "closer: \(String(describing: closer)), waiter: \(String(describing: waited))")
            let failures = [closer, waited].compactMap { $0 }
            #expect(failures.allSatisfy { $0.isRetryable })
        }
    }

    @Test("55P03: NOWAIT on a held lock, then 25P02; a savepoint before it revives the transaction")
    func noWait() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("x", "0")
            let holder = try await store.begin(.readCommitted)
            try await holder.lock("x", .forUpdate)
            let t2 = try await store.begin(.readCommitted)
            let e = await isoKVError { try await t2.lock("x", .forShare, wait: .noWait) }
            #expect(e?.code == .lockNotAvailable)
            #expect(e?.isRetryable == false)
            #expect(await isoKVError { _ = try await t2.get("x") }?.code == .transactionAborted)
            try await t2.rollback()

            let t3 = try await store.begin(.readCommitted)
            let sp = try await t3.savepoint()
            #expect(
                await isoKVError { _ = try await t3.scan(.all, lock: .forUpdate, wait: .noWait) }?.code
                    == .lockNotAvailable)
            #expect(await isoKVError { try await t3.put("y", "1") }?.code == .transactionAborted)
            try await t3.rollback(to: sp)  // PostgreSQL's way back from a failed statement
            try await t3.put("y", "1")
            try await t3.commit()
            #expect(try await store.get("y")?.value == "1")
            try await holder.commit()
        }
    }

    @Test("55P03: lock timeout from the configuration and per transaction")
    func lockTimeout() async throws {
        try await PostgresTestEnvironment.withStore({ $0.lockTimeout = .milliseconds(150) }) { store in
            _ = try await store.put("x", "0")
            let holder = try await store.begin(.readCommitted)
            try await holder.put("x", "1")
            let clock = ContinuousClock()
            let start = clock.now
            let t2 = try await store.begin(.readCommitted)
            let e = await isoKVError { try await t2.put("x", "2") }
            #expect(e?.code == .lockNotAvailable)
            #expect(clock.now - start >= .milliseconds(140))
            try await t2.rollback()
            // A single-key write waits under the same session setting.
            #expect(await isoKVError { _ = try await store.increment("x") }?.code == .lockNotAvailable)
            // Per transaction: a longer timeout outlives the holder, which commits meanwhile.
            let t3 = try await store.begin(
                .readCommitted, readOnly: false, deferrable: false, lockTimeout: .seconds(30))
            let t3ID = t3.id
            let waiter = Task { () -> Bytes? in
                try await t3.put("x", "3")
                let v = try await t3.get("x")
                try await t3.commit()
                return v
            }
            await store.waitUntilWaiting(t3ID, on: "x")
            try await holder.commit()
            #expect(try await waiter.value == "3")
            let t4 = try await store.begin(
                .readCommitted, readOnly: false, deferrable: false, lockTimeout: .milliseconds(50))
            let blocker = try await store.begin(.readCommitted)
            try await blocker.lock("x", .forShare)
            #expect(await isoKVError { try await t4.lock("x", .forUpdate) }?.code == .lockNotAvailable)
            try await t4.rollback()
            try await blocker.rollback()
        }
    }

    @Test("25P02 for every operation after a server error, and at commit")
    func abortedAfterError() async throws {
        try await PostgresTestEnvironment.withStore { store in
            let tx = try await store.begin(.readCommitted)
            try await tx.put("a", "1")
            let holder = try await store.begin(.readCommitted)
            try await holder.lock("a2", .forUpdate)  // absent key: locks nothing in PostgreSQL
            _ = try await store.put("held", "0")
            try await holder.lock("held", .forUpdate)
            let e = await isoKVError { try await tx.lock("held", .forUpdate, wait: .noWait) }
            #expect(e?.code == .lockNotAvailable)
            for op in [
                { try await tx.put("b", "2") }, { _ = try await tx.get("a") }, { _ = try await tx.scan() },
                { _ = try await tx.savepoint() }
            ] as [() async throws -> Void] {
                #expect(await isoKVError(op)?.code == .transactionAborted)
            }
            #expect(await isoKVError { try await tx.commit() }?.code == .transactionAborted)
            #expect(try await store.get("a") == nil)
            try await holder.rollback()
        }
    }

    @Test("IK412 for every version precondition that fails")
    func versionMismatch() async throws {
        try await PostgresTestEnvironment.withStore { store in
            let v = try await store.put("k", "1")
            _ = try await store.put("k", "2")
            #expect(await isoKVError { try await store.put("k", "3", ifVersion: v) }?.code == .versionMismatch)
            #expect(await isoKVError { try await store.delete("k", ifVersion: v) }?.code == .versionMismatch)
        }
    }

    @Test("the closure API retries 40001 and reports other errors at once")
    func closureRetries() async throws {
        try await PostgresTestEnvironment.withStore { store in
            _ = try await store.put("x", "0")
            var attempts = 0
            try await store.transaction(.snapshot) { tx in
                attempts += 1
                let v = try await tx.get("x")?.int64 ?? 0
                if attempts == 1 { _ = try await store.put("x", "10") }  // a conflicting commit on the first try
                try await tx.put("x", Bytes(v + 1))
            }
            #expect(attempts == 2)
            #expect(try await store.get("x")?.value == "11")
            var tries = 0
            let e = await isoKVError {
                try await store.transaction(.snapshot) { tx in
                    tries += 1
                    try await tx.insert("x", "dup")
                }
            }
            #expect(e?.code == .uniqueViolation)
            #expect(tries == 1)
        }
    }
}
