import Testing
import Foundation
@_spi(Testing) @testable import IsoKV
import IsoKVStorage
import IsoKVSync
import IsoKVTestSupport

/// SERIALIZABLE on a durable database: the SSI pre-commit check runs before the WAL record is enqueued, the
/// transaction is `prepared` (it can no longer be a victim) while the fsync is in flight, and it is marked
/// committed at publication. The anomalies SSI prevents in memory must stay prevented here.
@Suite struct DurableSerializableConcurrentTests {
    /// The two doctors on a durable database: the second commit fails with 40001, and after a reopen exactly one
    /// doctor is off call.
    @Test(arguments: [Database.Durability.fsync, .unsafeNoSync])
    func doctorsOnCall(_ mode: Database.Durability) async throws {
        let dir = TemporaryDirectory("ssi-doctors")
        defer { dir.remove() }
        do {
            let db = try await Database.open(path: dir.path, options: durableOptions(mode))
            try await seed(db, [("doctor/alice", "on"), ("doctor/bob", "on")])
            let t1 = try await db.begin(.serializable)
            let t2 = try await db.begin(.serializable)
            for t in [t1, t2] {
                #expect(try await t.get("doctor/alice") == "on")
                #expect(try await t.get("doctor/bob") == "on")
            }
            try await t1.put("doctor/alice", "off")
            try await t2.put("doctor/bob", "off")
            try await t1.commit()
            var failure: IsoKVError?
            do { try await t2.commit() } catch let e as IsoKVError { failure = e }
            #expect(failure?.code == .serializationFailure)
            await db.close()
            expectConsistent(db)
        }
        let db = try await Database.open(path: dir.path, options: durableOptions(mode))
        #expect(try await value(db, "doctor/alice") == "off")
        #expect(try await value(db, "doctor/bob") == "on")
        await db.close()
    }

    /// The durable SSI window: T1 (serializable) has passed its pre-commit check and is prepared, its fsync held
    /// by a failpoint. T2, concurrent with it, read both doctors and now writes the other one, closing the dangerous
    /// structure with the prepared T1. The documented rule (SSI DESIGN, "Durable databases"): a prepared
    /// transaction can no longer be a victim, so T2 fails with 40001, while T1 is still held; released, T1
    /// commits, and a reopen shows exactly T1's write.
    @Test(.timeLimit(.minutes(1))) func heldPreparedCommitterWinsAndCommitsWhenReleased() async throws {
        let dir = TemporaryDirectory("ssi-held")
        defer { dir.remove() }
        let gate = SyncGate()
        let hook = FaultHook { p in
            if p == .walSync { gate.pass() }  // on the log's flusher thread, which may block
            return nil
        }
        do {
            let db = try await Database.open(path: dir.path, options: durableOptions(.fsync, faults: hook))
            try await seed(db, [("doctor/alice", "on"), ("doctor/bob", "on")])
            let t2 = try await db.begin(.serializable)
            #expect(try await t2.get("doctor/alice") == "on")
            #expect(try await t2.get("doctor/bob") == "on")
            gate.close()
            let t1 = Task {
                let t1 = try await db.begin(.serializable)
                #expect(try await t1.get("doctor/alice") == "on")
                #expect(try await t1.get("doctor/bob") == "on")
                try await t1.put("doctor/alice", "off")
                try await t1.commit()
            }
            while !gate.hasWaiter { try await Task.sleep(for: .milliseconds(1)) }  // T1's fsync is held
            #expect(try await db.get("doctor/alice")?.value == "on")  // not visible while held
            var failure: IsoKVError?
            do {
                try await t2.put("doctor/bob", "off")
                try await t2.commit()
            } catch let e as IsoKVError { failure = e }
            #expect(failure?.code == .serializationFailure, "\(String(describing: failure))")
            print("held prepared: T2 failed with \(String(describing: failure))")
            #expect(gate.hasWaiter, "T1 must still be held when T2 fails")
            try? await t2.rollback()  // already ended by the 40001
            gate.open()
            try await t1.value
            #expect(try await db.get("doctor/alice")?.value == "off")
            #expect(try await db.get("doctor/bob")?.value == "on")
            await db.close()
            expectConsistent(db)
        }
        let db = try await Database.open(path: dir.path, options: durableOptions(.fsync))
        #expect(try await value(db, "doctor/alice") == "off")
        #expect(try await value(db, "doctor/bob") == "on")
        await db.close()
    }

    /// Write skew under load: pairs of accounts whose sum must stay ≥ 0, each transaction reading both and
    /// withdrawing from one (or, when the pair is low, depositing). Concurrent serializable transactions with
    /// retries on a durable database never break the rule while commits wait for their fsync (prepared) and others
    /// read and write around them. The rule is checked in the view of every committed transaction (the sum it read
    /// is returned by its committed attempt), so a deposit cannot hide an earlier violation, and at the end; and
    /// 40001s must have happened (otherwise the run proves nothing). (Here the conflicts are mostly caught at
    /// read/write time; `doctorsOnCall` is the deterministic case that only the prepare-time check catches.)
    @Test func writeSkewGuardHoldsOnDurableDatabase() async throws {
        let dir = TemporaryDirectory("ssi-skew")
        defer { dir.remove() }
        let runSeed = testSeed("writeSkewGuardHoldsOnDurableDatabase")
        let db = try await Database.open(path: dir.path, options: durableOptions(.fsync))
        let pairs = 2
        try await seed(
            db, (0..<pairs).flatMap { p in [(Bytes("a/\(p)/x"), Bytes("50")), (Bytes("a/\(p)/y"), Bytes("50"))] })
        let retried = Locked<[IsoKVError.Code: Int]>([:])
        var policy = RetryPolicy(maxAttempts: 1_000)
        policy.onRetry = { event in retried.withLock { $0[event.error.code, default: 0] += 1 } }
        let views = try await withThrowingTaskGroup(of: [(pair: Int, x: Int, y: Int)].self) { group in
            for task in 0..<8 {
                group.addTask { [policy] in
                    var rng = SplitMix64(seed: runSeed &+ UInt64(task))
                    var seen: [(pair: Int, x: Int, y: Int)] = []
                    for i in 0..<40 {
                        let p = (task + i) % pairs
                        let side = Bool.random(using: &rng) ? "x" : "y"
                        let view = try await db.transaction(.serializable, retry: policy) { tx in
                            let x = try #require(Int(try await tx.get(Bytes("a/\(p)/x"))?.string ?? ""))
                            let y = try #require(Int(try await tx.get(Bytes("a/\(p)/y"))?.string ?? ""))
                            if x + y >= 30 {
                                let current = side == "x" ? x : y
                                try await tx.put(Bytes("a/\(p)/\(side)"), Bytes("\(current - 30)"))
                            } else {
                                // Top the pair up so that the run keeps producing conflicts.
                                try await tx.put(Bytes("a/\(p)/x"), Bytes("\(x + 60)"))
                            }
                            return (pair: p, x: x, y: y)
                        }
                        seen.append(view)
                    }
                    return seen
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(views.count == 8 * 40)
        for v in views where v.x + v.y < 0 {
            Issue.record("a committed transaction saw pair \(v.pair) at \(v.x) + \(v.y) < 0")
        }
        for p in 0..<pairs {
            let x = try #require(Int(try await value(db, Bytes("a/\(p)/x"))?.string ?? ""))
            let y = try #require(Int(try await value(db, Bytes("a/\(p)/y"))?.string ?? ""))
            #expect(x + y >= 0, "pair \(p): \(x) + \(y)")
        }
        let aborts = db.statistics().aborts
        let retries = retried.withLock { $0 }
        #expect(aborts.serializationFailures > 0, "\(aborts)")
        #expect((retries[.serializationFailure] ?? 0) > 0, "\(retries)")
        print("write skew, durable: \(aborts); retried \(retries)")
        await db.close()
        expectConsistent(db)
    }
    /// Fekete's read-only anomaly across a commit that a later one published. T1 (serializable, the `T_out`) is
    /// durable but held before its own publication; a later commit `publisher` (serializable or snapshot) is
    /// acknowledged by a later fsync and publishes up to its own sequence number, which makes T1's deposit visible
    /// first. A read-only serializable report R then sees the deposit but not the pivot T2's withdrawal, while T2
    /// read neither. R ──rw──▶ T2 ──rw──▶ T1 with T1 visible to R: T1 committed before R's snapshot, so T2's write
    /// must fail with 40001 — which requires T1's commit mark to precede R's begin on the SSI clock although T1
    /// itself has not reached its publication yet.
    @Test(.timeLimit(.minutes(1)), arguments: [IsolationLevel.serializable, .snapshot])
    func readOnlyAnomalyAcrossACommitPublishedByALaterOne(publisher: IsolationLevel) async throws {
        let dir = TemporaryDirectory("ssi-published-later")
        defer { dir.remove() }
        let pause = CommitPause()
        var options = durableOptions(.fsync)
        options.beforePublish = { _ in await pause.passIfArmed() }
        let db = try await Database.open(path: dir.path, options: options)
        try await seed(db, [("savings", "0"), ("checking", "0")])
        let t2 = try await db.begin(.serializable)
        #expect(try await t2.get("savings") == "0")
        #expect(try await t2.get("checking") == "0")
        pause.arm()
        let t1 = Task {
            let t1 = try await db.begin(.serializable)
            try await t1.put("savings", "20")  // T2 ──rw──▶ T1
            try await t1.commit()
        }
        while !pause.hasWaiter { try await Task.sleep(for: .milliseconds(1)) }
        #expect(try await db.get("savings")?.value == "0", "T1 is durable but not published")
        let later = try await db.begin(publisher)
        try await later.put("unrelated", "1")
        try await later.commit()
        #expect(try await db.get("savings")?.value == "20", "the later commit published T1 too")
        #expect(pause.hasWaiter, "T1 must still be held")
        #expect(db.statistics().serializable.preparedMarkedByLaterCommit == 1)
        expectConsistent(db, .concurrent)  // a visible prepared commit must be marked committed
        let report = try await db.begin(.serializable, readOnly: true)
        #expect(try await report.get("savings") == "20")
        #expect(try await report.get("checking") == "0")
        var failure: IsoKVError?
        do {
            try await t2.put("checking", "-11")  // R ──rw──▶ T2: T2 is the pivot
            try await t2.commit()
        } catch let e as IsoKVError { failure = e }
        pause.release()
        try await t1.value
        try await report.commit()
        #expect(failure?.code == .serializationFailure, "T2 must fail: \(String(describing: failure))")
        #expect(try await db.get("checking")?.value == "0")
        await db.close()
        expectConsistent(db)
    }
}

/// Holds one commit of a durable database before its publication (`OpenOptions.beforePublish`): the first commit
/// to pass after `arm()` suspends until `release()`; the test polls `hasWaiter`.
final class CommitPause: Sendable {
    private struct State {
        var armed = false
        var released = false
        var waiter: CheckedContinuation<Void, Never>?
        var holding = false
    }
    // `Locked` (a pthread mutex): see SyncGate.
    private let state = Locked(State())

    func arm() { state.withLock { $0.armed = true } }
    var hasWaiter: Bool { state.withLock { $0.holding } }

    func passIfArmed() async {
        let hold = state.withLock { s -> Bool in
            defer { s.armed = false }
            return s.armed
        }
        guard hold else { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resume = state.withLock { s -> Bool in
                if s.released { return true }
                s.waiter = c
                s.holding = true
                return false
            }
            if resume { c.resume() }
        }
    }

    func release() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.released = true
            s.holding = false
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }
}
