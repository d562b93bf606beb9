import IsoKVCore

// The row-lock replays: each provokes one lock conflict and reports how the store resolved it. The transaction
// that closes a deadlock runs in the replay's task; the ones that wait first are spawned participants, ordered with
// `waitsForLock`.

extension ReplayContext {
    func shareLocks() async throws -> Finding {
        try await seed(["x": "0"])
        let t1 = try await begin(.t1)
        let t2 = try await begin(.t2)
        let v1 = try await step(.t1, "locks x FOR SHARE") { try await t1.lock("x", .forShare, wait: .block) }
        guard v1 == "0" else { throw Misbehaviour("T1's FOR SHARE lock returned x = \(describe(v1)), expected 0") }
        if let refused = try await attempt({
            _ = try await step(.t2, "locks x FOR SHARE NOWAIT") { try await t2.lock("x", .forShare, wait: .noWait) }
        }) {
            throw Misbehaviour(
                "T2's FOR SHARE NOWAIT failed (\(refused.error)) while T1 held only FOR SHARE: share locks must be compatible"
            )
        }
        let t3 = try await spawn(.t3) { tx in
            try await step(.t3, "writes x = 1") { try await tx.put("x", "1") }
            try await step(.t3, "commits") { try await tx.commit() }
        }
        guard try await waitsForLock(t3, on: "x") else {
            try await t1.rollback()
            try await t2.rollback()
            return try await endedWithoutWaiting(
                t3, whenSucceeded: "T3 wrote x while T1 and T2 held FOR SHARE locks on it")
        }
        try await step(.t1, "commits") { try await t1.commit() }
        // T2 still shares the lock: an exclusive request must still be refused.
        let t4 = try await begin(.t4)
        let probe = try await attempt {
            _ = try await step(.t4, "locks x FOR UPDATE NOWAIT") { try await t4.lock("x", .forUpdate, wait: .noWait) }
        }
        try await step(.t4, "rolls back") { try await t4.rollback() }
        guard let probe, probe.storeError?.code == .lockNotAvailable else {
            try await t2.rollback()
            throw Misbehaviour(
                "T4's FOR UPDATE NOWAIT " + (probe.map { "failed with \($0.error)" } ?? "succeeded")
                    + " while T2 still held FOR SHARE; expected 55P03")
        }
        try await expectCommitted(["x": "0"], "while T2 still held FOR SHARE")
        try await step(.t2, "commits") { try await t2.commit() }
        switch await t3.result {
        case .success:
            try await expectCommitted(["x": "1"], "after T3 committed")
            return Finding(
                .preventedByWaiting(.t3),
                "T1 and T2 held FOR SHARE together; T3's write waited until both had ended (T4's FOR UPDATE NOWAIT failed with 55P03 while T2 still held the lock)"
            )
        case .failure(let failure as StepFailure) where failure.resolvesConflict:
            return prevented(by: failure, afterWaiting: true)
        case .failure(let error):
            throw error
        }
    }

    func noWait() async throws -> Finding {
        try await seed(["x": "0"])
        let t1 = try await begin(.t1)
        _ = try await step(.t1, "locks x FOR UPDATE") { try await t1.lock("x", .forUpdate, wait: .block) }
        let t2 = try await begin(.t2)
        guard
            let failure = try await attempt({
                _ = try await step(.t2, "locks x FOR UPDATE NOWAIT") {
                    try await t2.lock("x", .forUpdate, wait: .noWait)
                }
            })
        else {
            throw Misbehaviour("T2 got FOR UPDATE NOWAIT on x while T1 held FOR UPDATE on it")
        }
        if failure.storeError?.code == .lockNotAvailable {
            try await expectStatementFailureHandled(t2, .t2, reading: "x", expected: "0")
        }
        try await t2.rollback()
        try await step(.t1, "commits") { try await t1.commit() }
        return prevented(
            by: failure, afterWaiting: false,
            capabilities.failedStatementAbortsTransaction ? "which aborted T2" : "T2 stayed usable")
    }

    func skipLocked() async throws -> Finding {
        try await seed(["jobs/1": "a", "jobs/2": "b", "jobs/3": "c", "other": "x"])
        var consumers: [Transaction] = []
        var taken: [[Bytes]] = []
        for number in 1...4 {
            let role = TransactionRole(number)
            let tx = try await begin(role)
            taken.append(
                try await step(role, "takes the first unlocked job") {
                    try await tx.scan(.prefix("jobs/"), limit: 1, lock: .forUpdate, wait: .skipLocked).map(\.key)
                })
            consumers.append(tx)
        }
        guard taken == [["jobs/1"], ["jobs/2"], ["jobs/3"], []] else {
            throw Misbehaviour("T1–T4 took \(taken); expected jobs/1, jobs/2, jobs/3 and nothing")
        }
        try await step(.t1, "deletes jobs/1") { _ = try await consumers[0].delete("jobs/1") }
        try await step(.t1, "commits") { try await consumers[0].commit() }
        let t5 = try await begin(.t5)
        let late = try await step(.t5, "takes up to 5 unlocked jobs") {
            try await t5.scan(.prefix("jobs/"), limit: 5, lock: .forUpdate, wait: .skipLocked).map(\.key)
        }
        guard late.isEmpty else {
            throw Misbehaviour("T5 took \(late) while jobs/2 and jobs/3 were locked and jobs/1 gone")
        }
        // Without SKIP LOCKED, the same scan fails at once.
        let t6 = try await begin(TransactionRole(6))
        let probe = try await attempt {
            _ = try await step(TransactionRole(6), "locks the jobs FOR UPDATE NOWAIT") {
                try await t6.scan(.prefix("jobs/"), limit: 5, lock: .forUpdate, wait: .noWait)
            }
        }
        try await t6.rollback()
        guard probe?.storeError?.code == .lockNotAvailable else {
            throw Misbehaviour(
                "a NOWAIT scan over the locked jobs " + (probe.map { "failed with \($0.error)" } ?? "succeeded")
                    + "; expected 55P03")
        }
        for (index, tx) in consumers.enumerated().dropFirst() {
            try await step(TransactionRole(index + 1), "rolls back") { try await tx.rollback() }
        }
        let freed = try await step(.t5, "takes the unlocked jobs again") {
            try await t5.scan(.prefix("jobs/"), lock: .forUpdate, wait: .skipLocked).map(\.key)
        }
        try await step(.t5, "commits") { try await t5.commit() }
        guard freed == ["jobs/2", "jobs/3"] else { throw Misbehaviour("once T2–T4 rolled back, T5 took \(freed)") }
        return Finding(
            .skippedLockedRows,
            "T1–T3 each took a different job and T4 found none unlocked, nobody waiting; T5 found none while T2, T3 held theirs, and took jobs/2, jobs/3 once they rolled back"
        )
    }

    /// T2's blocking write must fail with 55P03 once it has waited the store's lock timeout.
    func lockTimeout() async throws -> Finding {
        try await seed(["x": "0", "y": "0"])
        let t1 = try await begin(.t1)
        try await step(.t1, "writes x = 1") { try await t1.put("x", "1") }
        let timeout = lockTimeout
        let t2 = try await spawn(.t2) { tx -> (StepFailure?, Duration) in
            let clock = ContinuousClock()
            let start = clock.now
            let failure = try await attempt {
                try await step(.t2, "writes x = 2") { try await tx.put("x", "2") }
            }
            let waited = clock.now - start
            if let failure, failure.storeError?.code == .lockNotAvailable {
                try await expectStatementFailureHandled(tx, .t2, reading: "y", expected: "0")
            }
            try await tx.rollback()
            return (failure, waited)
        }
        let (failure, waited) = try await t2.task.value
        try await step(.t1, "rolls back") { try await t1.rollback() }
        guard let failure else {
            throw Misbehaviour("T2 wrote x while T1 held an uncommitted write of it (a dirty write)")
        }
        // The lock is free again: another transaction gets it.
        try await commitWrites(.t3, ["x": "3"])
        try await expectCommitted(["x": "3"], "after T3 committed")
        // A timer may fire a little early on some systems; a failure well before the timeout is not a timeout.
        let afterWaiting = waited >= timeout * 0.9
        return prevented(
            by: failure, afterWaiting: afterWaiting,
            "after \(milliseconds(waited)) (lock timeout \(milliseconds(timeout)))")
    }

    func deadlockOfTwo() async throws -> Finding {
        try await seed(["a": "0", "b": "0"])
        let t2 = try await begin(.t2)
        try await step(.t2, "writes b = 2") { try await t2.put("b", "2") }
        let t1 = try await spawn(.t1) { tx in
            try await step(.t1, "writes a = 1") { try await tx.put("a", "1") }
            try await step(.t1, "writes b = 1") { try await tx.put("b", "1") }
            try await step(.t1, "commits") { try await tx.commit() }
        }
        guard try await waitsForLock(t1, on: "b") else {
            try await t2.rollback()
            return try await endedWithoutWaiting(
                t1, whenSucceeded: "T1 wrote b while T2 held an uncommitted write of it")
        }
        if let failure = try await attempt({ try await step(.t2, "writes a = 2") { try await t2.put("a", "2") } }) {
            // T2 closed the cycle and is the victim: T1 proceeds.
            if failure.storeError?.isRetryable == true { try await expectDead(t2, .t2, reading: "a") }
            try await t2.rollback()
            try await expectSucceeded(t1, "after T2 failed")
            try await expectCommitted(["a": "1", "b": "1"], "after T1 committed")
            return prevented(by: failure, afterWaiting: false, "T1 then committed")
        }
        // T2's request was granted, so T1 must have been chosen while T2 waited.
        return try await victimWhileWaiting(
            t1, survivorCommits: { try await step(.t2, "commits") { try await t2.commit() } },
            expected: ["a": "2", "b": "2"])
    }

    func deadlockOfThree() async throws -> Finding {
        try await seed(["a": "0", "b": "0", "c": "0"])
        let t3 = try await begin(.t3)
        _ = try await step(.t3, "locks c FOR UPDATE") { try await t3.lock("c", .forUpdate, wait: .block) }
        let t2 = try await spawn(.t2) { tx in
            _ = try await step(.t2, "locks b FOR UPDATE") { try await tx.lock("b", .forUpdate, wait: .block) }
            try await step(.t2, "writes c = 2") { try await tx.put("c", "2") }
            try await step(.t2, "commits") { try await tx.commit() }
        }
        guard try await waitsForLock(t2, on: "c") else {
            try await t3.rollback()
            return try await endedWithoutWaiting(t2, whenSucceeded: "T2 wrote c while T3 held FOR UPDATE on it")
        }
        let t1 = try await spawn(.t1) { tx in
            _ = try await step(.t1, "locks a FOR UPDATE") { try await tx.lock("a", .forUpdate, wait: .block) }
            try await step(.t1, "writes b = 1") { try await tx.put("b", "1") }
            try await step(.t1, "commits") { try await tx.commit() }
        }
        guard try await waitsForLock(t1, on: "b") else {
            try await t3.rollback()
            _ = await t2.result
            return try await endedWithoutWaiting(t1, whenSucceeded: "T1 wrote b while T2 held FOR UPDATE on it")
        }
        if let failure = try await attempt({ try await step(.t3, "writes a = 3") { try await t3.put("a", "3") } }) {
            // T3 closed the cycle and is the victim: T2 gets c and commits, then T1 gets b and commits.
            if failure.storeError?.isRetryable == true { try await expectDead(t3, .t3, reading: "a") }
            try await t3.rollback()
            try await expectSucceeded(t2, "after T3 failed")
            try await expectSucceeded(t1, "after T2 committed")
            try await expectCommitted(["a": "0", "b": "1", "c": "2"], "after T2 and T1 committed")
            return prevented(by: failure, afterWaiting: false, "T2 and then T1 committed")
        }
        // T3's request was granted: T1 or T2 was chosen while it waited. T3 commits; the other one then finishes.
        try await step(.t3, "commits") { try await t3.commit() }
        let r1 = await t1.result, r2 = await t2.result
        switch (r1, r2) {
        case (.success, .failure(let failure as StepFailure)) where failure.resolvesConflict:
            try await expectCommitted(["a": "3", "b": "1", "c": "0"], "after T1 and T3 committed")
            return prevented(by: failure, afterWaiting: true, "T1 and T3 then committed")
        case (.failure(let failure as StepFailure), .success) where failure.resolvesConflict:
            try await expectCommitted(["a": "3", "b": "0", "c": "2"], "after T3 and T2 committed")
            return prevented(by: failure, afterWaiting: true, "T3 and T2 then committed")
        default:
            throw Misbehaviour(
                "T3's write of a was granted; then T1 ended with \(r1) and T2 with \(r2): expected one deadlock victim")
        }
    }

    func upgradeDeadlock() async throws -> Finding {
        try await seed(["x": "0"])
        let t2 = try await begin(.t2)
        _ = try await step(.t2, "locks x FOR SHARE") { try await t2.lock("x", .forShare, wait: .block) }
        let t1 = try await spawn(.t1) { tx in
            _ = try await step(.t1, "locks x FOR SHARE") { try await tx.lock("x", .forShare, wait: .block) }
            try await step(.t1, "writes x = 1") { try await tx.put("x", "1") }
            try await step(.t1, "commits") { try await tx.commit() }
        }
        guard try await waitsForLock(t1, on: "x") else {
            try await t2.rollback()
            return try await endedWithoutWaiting(t1, whenSucceeded: "T1 wrote x while T2 held FOR SHARE on it")
        }
        if let failure = try await attempt({ try await step(.t2, "writes x = 2") { try await t2.put("x", "2") } }) {
            if failure.storeError?.isRetryable == true { try await expectDead(t2, .t2, reading: "x") }
            try await t2.rollback()
            try await expectSucceeded(t1, "after T2 failed")
            try await expectCommitted(["x": "1"], "after T1 committed")
            return prevented(by: failure, afterWaiting: false, "T1 then upgraded and committed")
        }
        return try await victimWhileWaiting(
            t1, survivorCommits: { try await step(.t2, "commits") { try await t2.commit() } },
            expected: ["x": "2"])
    }

    // MARK: Helpers

    /// Throws unless `participant` committed.
    private func expectSucceeded<Value>(_ participant: Participant<Value>, _ context: String) async throws {
        if case .failure(let error) = await participant.result {
            throw Misbehaviour("\(participant.role) failed \(context): \(error)")
        }
    }

    /// The request that would close the cycle was granted: `waiter` (observed waiting) must have failed, the
    /// survivor commits, and the committed state is `expected`.
    private func victimWhileWaiting<Value>(
        _ waiter: Participant<Value>, survivorCommits: () async throws -> Void,
        expected: KeyValuePairs<Bytes, Bytes?>
    ) async throws -> Finding {
        switch await waiter.result {
        case .failure(let failure as StepFailure) where failure.resolvesConflict:
            try await survivorCommits()
            try await expectCommitted(expected, "after the survivor committed")
            return prevented(by: failure, afterWaiting: true, "the other transaction then committed")
        case .failure(let error):
            throw error
        case .success:
            throw Misbehaviour("both transactions of the cycle got their locks and committed")
        }
    }
}

/// `"52 ms"`.
func milliseconds(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) ms"
}
