import IsoKVCore

// The anomaly replays. Each follows its `Replay.summary`; every transaction runs at `level`. Steps that cannot
// block run in the replay's own task, one after the other (reads never wait); a step that blocks runs in a spawned
// participant, and the replay orders its next step after the participant's wait with `waitsForLock`.

extension ReplayContext {
    /// How the holder of the first write ends in the dirty-write replays.
    enum HolderEnd {
        case commit, rollback, rollbackToSavepoint

        var past: String {
            switch self {
            case .commit: return "committed"
            case .rollback: return "rolled back"
            case .rollbackToSavepoint: return "rolled back to its savepoint"
            }
        }
    }

    func dirtyWrite(_ end: HolderEnd) async throws -> Finding {
        try await seed(["x": "0", "y": "0"])
        let t1 = try await begin(.t1)
        var savepoint: Savepoint?
        if end == .rollbackToSavepoint {
            try await step(.t1, "writes y = 1") { try await t1.put("y", "1") }
            savepoint = try await step(.t1, "takes a savepoint") { try await t1.savepoint() }
        }
        try await step(.t1, "writes x = 1") { try await t1.put("x", "1") }
        let t2 = try await spawn(.t2) { tx in
            try await step(.t2, "writes x = 2") { try await tx.put("x", "2") }
            try await step(.t2, "commits") { try await tx.commit() }
        }
        guard try await waitsForLock(t2, on: "x") else {
            try await t1.rollback()
            return try await endedWithoutWaiting(
                t2,
                whenSucceeded: "T2 overwrote T1's uncommitted write of x and committed without waiting (a dirty write)")
        }
        let during = try await committed("x")
        guard during == "0" else {
            throw Misbehaviour("while T2 waited, the committed x was \(describe(during)) instead of 0")
        }
        switch end {
        case .commit: try await step(.t1, "commits") { try await t1.commit() }
        case .rollback: try await step(.t1, "rolls back") { try await t1.rollback() }
        case .rollbackToSavepoint:
            try await step(.t1, "rolls back to its savepoint") { try await t1.rollback(to: savepoint!) }
        }
        // With a savepoint, T1 is still open: T2 must get the lock now, not when T1 ends.
        let result = await t2.result
        if end == .rollbackToSavepoint { try await step(.t1, "commits") { try await t1.commit() } }
        let ended = end.past
        switch result {
        case .success:
            if end == .rollbackToSavepoint {
                try await expectCommitted(["x": "2", "y": "1"], "after T2 and then T1 committed")
            } else {
                try await expectCommitted(["x": "2"], "after T2 committed")
            }
            return Finding(
                .preventedByWaiting(.t2),
                "T2 waited for T1's lock on x; T1 \(ended); T2 then wrote x = 2 and committed"
                    + (end == .rollbackToSavepoint ? " while T1 was still open" : ""))
        case .failure(let failure as StepFailure) where failure.resolvesConflict:
            try await expectCommitted(["x": end == .commit ? "1" : "0"], "after T2 failed")
            return prevented(by: failure, afterWaiting: true, "T1 \(ended) while T2 waited")
        case .failure(let error):
            throw error
        }
    }

    func dirtyRead() async throws -> Finding {
        try await seed(["x": "0"])
        let t1 = try await begin(.t1)
        try await step(.t1, "writes x = 1") { try await t1.put("x", "1") }
        let t2 = try await begin(.t2)
        let seen = try await step(.t2, "reads x") { try await t2.get("x") }
        try await step(.t2, "commits") { try await t2.commit() }
        try await step(.t1, "commits") { try await t1.commit() }
        switch seen {
        case "1": return Finding(.occurred, "T2 read x = 1, T1's uncommitted write")
        case "0": return Finding(.preventedBySnapshot, "T2 read the committed x = 0 while T1's write of 1 was pending")
        default: throw Misbehaviour("T2 read x = \(describe(seen)); only 0 (committed) or 1 (T1's pending write) exist")
        }
    }

    func abortedRead() async throws -> Finding {
        try await seed(["x": "0"])
        let t1 = try await begin(.t1)
        let t2 = try await begin(.t2)
        try await step(.t1, "writes x = 1") { try await t1.put("x", "1") }
        let first = try await step(.t2, "reads x") { try await t2.get("x") }
        try await step(.t1, "rolls back") { try await t1.rollback() }
        let second = try await step(.t2, "reads x again") { try await t2.get("x") }
        try await step(.t2, "commits") { try await t2.commit() }
        guard second == "0" else {
            throw Misbehaviour("after T1 rolled back, T2 read x = \(describe(second)), expected 0")
        }
        switch first {
        case "1":
            return Finding(
                .occurred, "T2 read x = 1, written by T1, which then rolled back: T2 saw a value that never existed")
        case "0": return Finding(.preventedBySnapshot, "T2 read x = 0 before and after T1's write and rollback")
        default: throw Misbehaviour("T2 read x = \(describe(first)); only 0 or T1's pending 1 exist")
        }
    }

    func lostUpdate() async throws -> Finding {
        try await seed(["n": "0"])
        let t1 = try await begin(.t1)
        let t2 = try await begin(.t2)
        let r1 = try await readCounter(t1, .t1)
        let r2 = try await readCounter(t2, .t2)
        guard r1 == 0, r2 == 0 else {
            throw Misbehaviour("T1 and T2 read n = \(r1), \(r2) before any write; expected 0")
        }
        try await step(.t1, "writes n = 1") { try await t1.put("n", Bytes(r1 + 1)) }
        try await step(.t1, "commits") { try await t1.commit() }
        if let failure = try await attempt({
            try await step(.t2, "writes n = 1") { try await t2.put("n", Bytes(r2 + 1)) }
            try await step(.t2, "commits") { try await t2.commit() }
        }) {
            if failure.storeError?.isRetryable == true { try await expectDead(t2, .t2, reading: "n") }
            try await expectCommitted(["n": "1"], "after T1 committed and T2 failed")
            return prevented(by: failure, afterWaiting: false, "T1's increment stands")
        }
        try await expectCommitted(["n": "1"], "after both committed an increment of 0")
        return Finding(.occurred, "T1 and T2 both read n = 0 and both committed n = 1: one of two increments is lost")
    }

    func lostUpdateAfterWait() async throws -> Finding {
        try await seed(["n": "0"])
        let t1 = try await begin(.t1)
        let r1 = try await readCounter(t1, .t1)
        try await step(.t1, "writes n = \(r1 + 1)") { try await t1.put("n", Bytes(r1 + 1)) }
        let t2 = try await spawn(.t2) { tx in
            let r2 = try await readCounter(tx, .t2)
            try await step(.t2, "writes n = \(r2 + 1)") { try await tx.put("n", Bytes(r2 + 1)) }
            try await step(.t2, "commits") { try await tx.commit() }
            return r2
        }
        guard try await waitsForLock(t2, on: "n") else {
            try await t1.rollback()
            return try await endedWithoutWaiting(
                t2, whenSucceeded: "T2 wrote n while T1 held an uncommitted write of it (a dirty write)")
        }
        try await step(.t1, "commits") { try await t1.commit() }
        switch await t2.result {
        case .failure(let failure as StepFailure) where failure.resolvesConflict:
            try await expectCommitted(["n": "1"], "after T1 committed and T2 failed")
            return prevented(by: failure, afterWaiting: true, "T1's increment stands")
        case .failure(let error):
            throw error
        case .success(let r2):
            let final = try await committed("n")
            switch (r2, final) {
            case (0, "1"):
                return Finding(
                    .occurred,
                    "T2 read n = 0 before T1 committed, waited for T1's lock, then wrote 1 over T1's 1: one increment is lost"
                )
            case (1, "2"):
                return Finding(
                    .preventedByWaiting(.t2),
                    "T2 read T1's uncommitted n = 1 (a dirty read), waited for T1's lock, then wrote 2: no increment lost, because T1 committed what T2 read"
                )
            default:
                throw Misbehaviour("T2 read n = \(r2) and the final n is \(describe(final))")
            }
        }
    }

    func nonRepeatableRead() async throws -> Finding {
        try await seed(["x": "0"])
        let t1 = try await begin(.t1)
        let first = try await step(.t1, "reads x") { try await t1.get("x") }
        guard first == "0" else { throw Misbehaviour("T1 read x = \(describe(first)), expected the committed 0") }
        try await commitWrites(.t2, ["x": "1"])
        let second = try await step(.t1, "reads x again") { try await t1.get("x") }
        try await step(.t1, "commits") { try await t1.commit() }
        switch second {
        case "1": return Finding(.occurred, "T1 read x = 0, then x = 1 after T2 committed")
        case "0":
            return Finding(.preventedBySnapshot, "T1 read x = 0 both times; T2's committed 1 is after T1's snapshot")
        default: throw Misbehaviour("T1 read x = \(describe(second)) the second time; expected 0 or 1")
        }
    }

    func readSkew() async throws -> Finding {
        try await seed(["x": "50", "y": "50"])
        let t1 = try await begin(.t1)
        let x = try await readInteger(t1, .t1, "x")
        try await commitWrites(.t2, ["x": "40", "y": "60"])
        let y = try await readInteger(t1, .t1, "y")
        try await step(.t1, "commits") { try await t1.commit() }
        switch (x, y) {
        case (50, 60):
            return Finding(
                .occurred, "T1 read x = 50 before and y = 60 after T2's transfer: a total of 110 that never existed")
        case (50, 50): return Finding(.preventedBySnapshot, "T1 read x = 50, y = 50: the state before T2's transfer")
        default: throw Misbehaviour("T1 read x = \(x), y = \(y)")
        }
    }

    func phantom() async throws -> Finding {
        try await seed(["emp/1": "a", "emp/2": "b", "other": "z"])
        let t1 = try await begin(.t1)
        let first = try await step(.t1, "scans emp/") { try await t1.scan(prefix: "emp/").map(\.key) }
        guard first == ["emp/1", "emp/2"] else { throw Misbehaviour("T1's first scan of emp/ returned \(first)") }
        let t2 = try await begin(.t2)
        try await step(.t2, "inserts emp/3") { try await t2.insert("emp/3", "c") }
        try await step(.t2, "commits") { try await t2.commit() }
        let second = try await step(.t1, "scans emp/ again") { try await t1.scan(prefix: "emp/").map(\.key) }
        try await step(.t1, "commits") { try await t1.commit() }
        switch second {
        case ["emp/1", "emp/2", "emp/3"]:
            return Finding(.occurred, "T1's second scan of emp/ returned T2's emp/3, which the first did not")
        case ["emp/1", "emp/2"]:
            return Finding(.preventedBySnapshot, "T1's two scans of emp/ returned the same two keys")
        default: throw Misbehaviour("T1's second scan of emp/ returned \(second)")
        }
    }

    // MARK: Helpers

    func readCounter(_ tx: Transaction, _ role: TransactionRole) async throws -> Int64 {
        try await readInteger(tx, role, "n")
    }

    func readInteger(_ tx: Transaction, _ role: TransactionRole, _ key: Bytes) async throws -> Int64 {
        let value = try await step(role, "reads \(key.plain)") { try await tx.get(key) }
        guard let number = value?.int64 else {
            throw Misbehaviour("\(role) read \(key.plain) = \(describe(value)), not a number")
        }
        return number
    }

    /// Begins `role`'s transaction, writes the pairs, commits.
    func commitWrites(_ role: TransactionRole, _ pairs: KeyValuePairs<Bytes, Bytes>) async throws {
        let tx = try await begin(role)
        for (key, value) in pairs {
            try await step(role, "writes \(key.plain) = \(value.plain)") { try await tx.put(key, value) }
        }
        try await step(role, "commits") { try await tx.commit() }
    }
}
