import IsoKVCore

// The replays of the anomalies snapshot isolation allows and serializable forbids: write skew (G2-item), predicate
// write skew (G2), and Fekete, O'Neil and O'Neil's read-only anomaly. Reads never wait, so each runs in one task,
// except the deferrable reader, which waits for a safe snapshot.

extension ReplayContext {
    /// Doctors on call: each goes off call after seeing both on call.
    func writeSkew() async throws -> Finding {
        try await seed(["doctor/alice": "on", "doctor/bob": "on"])
        let t1 = try await begin(.t1)
        let t2 = try await begin(.t2)
        for (role, tx) in [(TransactionRole.t1, t1), (.t2, t2)] {
            for doctor: Bytes in ["doctor/alice", "doctor/bob"] {
                let v = try await step(role, "reads \(doctor.plain)") { try await tx.get(doctor) }
                guard v == "on" else {
                    throw Misbehaviour("\(role) read \(doctor.plain) = \(describe(v)), expected on")
                }
            }
        }
        if let failure = try await attempt({
            try await step(.t1, "takes doctor/alice off call") { try await t1.put("doctor/alice", "off") }
            try await step(.t2, "takes doctor/bob off call") { try await t2.put("doctor/bob", "off") }
            try await step(.t1, "commits") { try await t1.commit() }
            try await step(.t2, "commits") { try await t2.commit() }
        }) {
            try await t1.rollback()
            try await t2.rollback()
            let onCall = [try await committed("doctor/alice"), try await committed("doctor/bob")].filter { $0 == "on" }
            guard !onCall.isEmpty else {
                throw Misbehaviour("both doctors are off call although \(failure.role) failed")
            }
            return prevented(by: failure, afterWaiting: false, "a doctor stays on call")
        }
        try await expectCommitted(["doctor/alice": "off", "doctor/bob": "off"], "after both committed")
        return Finding(.occurred, "T1 and T2 each saw two doctors on call and each took one off: nobody is on call")
    }

    /// Room booking: each sees the room free (an empty scan) and books it.
    func predicateWriteSkew() async throws -> Finding {
        try await seed(["booking/100/x": "guest0"])
        let t1 = try await begin(.t1)
        let t2 = try await begin(.t2)
        for (role, tx) in [(TransactionRole.t1, t1), (.t2, t2)] {
            let rows = try await step(role, "scans booking/101/") { try await tx.scan(prefix: "booking/101/") }
            guard rows.isEmpty else { throw Misbehaviour("\(role) found \(rows.map(\.key)) in the empty booking/101/") }
        }
        if let failure = try await attempt({
            try await step(.t1, "inserts booking/101/ann") { try await t1.insert("booking/101/ann", "ann") }
            try await step(.t2, "inserts booking/101/bob") { try await t2.insert("booking/101/bob", "bob") }
            try await step(.t1, "commits") { try await t1.commit() }
            try await step(.t2, "commits") { try await t2.commit() }
        }) {
            try await t1.rollback()
            try await t2.rollback()
            let bookings = try await bookingsOfRoom101()
            guard bookings.count <= 1 else {
                throw Misbehaviour("room 101 has \(bookings) although \(failure.role) failed")
            }
            return prevented(by: failure, afterWaiting: false, "room 101 is booked at most once")
        }
        let bookings = try await bookingsOfRoom101()
        guard bookings == ["booking/101/ann", "booking/101/bob"] else {
            throw Misbehaviour("after both committed, room 101 has \(bookings)")
        }
        return Finding(.occurred, "T1 and T2 each found room 101 free and each booked it: two bookings")
    }

    private func bookingsOfRoom101() async throws -> [Bytes] {
        try await store.transaction(.snapshot, readOnly: true, retry: .none) { tx in
            try await tx.scan(prefix: "booking/101/").map(\.key)
        }
    }

    /// Checking x and savings y start at 0. T2 (a withdrawal of 10 from x, with a penalty of 1 if x + y would go
    /// negative) reads both; T1 deposits 20 into y and commits; read-only T3 reads both and commits; T2 writes x.
    /// Without T3 the history is serializable (T2 before T1); T3 sees T1's deposit but not T2's withdrawal, which
    /// puts T1 before T3 before T2 — yet T2 charged the penalty, so T2 came before T1: a cycle.
    func readOnlyAnomaly(deferrableReader: Bool) async throws -> Finding {
        try await seed(["x": "0", "y": "0"])
        let t2 = try await begin(.t2)
        let x2 = try await readInteger(t2, .t2, "x")
        let y2 = try await readInteger(t2, .t2, "y")
        guard x2 == 0, y2 == 0 else { throw Misbehaviour("T2 read x = \(x2), y = \(y2), expected 0, 0") }
        let newX = x2 - 10 - (x2 + y2 - 10 < 0 ? 1 : 0)

        if let failure = try await attempt({ try await deposit() }) {
            try await t2.rollback()
            return prevented(by: failure, afterWaiting: false)
        }

        if deferrableReader {
            let t3 = try await spawn(.t3, deferrable: true) { tx in
                let x = try await readInteger(tx, .t3, "x"), y = try await readInteger(tx, .t3, "y")
                try await step(.t3, "commits") { try await tx.commit() }
                return (x, y)
            }
            if try await waitsForSafeSnapshot(t3) {
                if let failure = try await attempt({ try await withdraw(t2, newX) }) {
                    try await t2.rollback()
                    _ = await t3.result
                    return prevented(by: failure, afterWaiting: false, "while T3 waited for a safe snapshot")
                }
                switch await t3.result {
                case .success((newX, 20)):
                    try await expectCommitted(["x": Bytes(newX), "y": "20"], "after T1, T2 and T3 committed")
                    return Finding(
                        .preventedByWaiting(.t3),
                        "T3 waited for a safe snapshot until T2 committed, then read x = \(newX), y = 20: the serial order T2, T1, T3"
                    )
                case .success(let (x, y)):
                    throw Misbehaviour(
                        "after waiting for a safe snapshot, T3 read x = \(x), y = \(y); expected \(newX), 20")
                case .failure(let failure as StepFailure) where failure.resolvesConflict:
                    return prevented(by: failure, afterWaiting: true, "T3 failed after waiting for a safe snapshot")
                case .failure(let error):
                    throw error
                }
            }
            // T3 did not wait: it read like a plain read-only transaction, and the replay goes on as without
            // deferrable.
            switch await t3.result {
            case .success(let (x, y)): return try await finishReadOnlyAnomaly(t2, newX, t3Read: (x, y))
            case .failure(let failure as StepFailure) where failure.resolvesConflict:
                try await t2.rollback()
                return prevented(by: failure, afterWaiting: false, "T3 did not wait for a safe snapshot")
            case .failure(let error): throw error
            }
        }

        let t3 = try await begin(.t3, readOnly: true)
        var t3Read: (Int64, Int64) = (0, 0)
        if let failure = try await attempt({
            t3Read = (try await readInteger(t3, .t3, "x"), try await readInteger(t3, .t3, "y"))
            try await step(.t3, "commits") { try await t3.commit() }
        }) {
            try await t3.rollback()
            try await t2.rollback()
            return prevented(by: failure, afterWaiting: false)
        }
        return try await finishReadOnlyAnomaly(t2, newX, t3Read: t3Read)
    }

    /// T2 withdraws after T3 read (0, 20).
    private func finishReadOnlyAnomaly(_ t2: Transaction, _ newX: Int64, t3Read: (Int64, Int64)) async throws -> Finding
    {
        guard t3Read == (0, 20) else {
            throw Misbehaviour("T3 read x = \(t3Read.0), y = \(t3Read.1); expected 0 and T1's deposit, 20")
        }
        if let failure = try await attempt({ try await withdraw(t2, newX) }) {
            if failure.storeError?.isRetryable == true { try await expectDead(t2, .t2, reading: "x") }
            try await expectCommitted(["x": "0", "y": "20"], "after T2 failed")
            return prevented(by: failure, afterWaiting: false, "read-only T3 committed")
        }
        try await expectCommitted(["x": Bytes(newX), "y": "20"], "after T1, T3 and T2 committed")
        return Finding(
            .occurred,
            "read-only T3 saw T1's deposit (y = 20) but not T2's withdrawal (x = 0), while T2 charged the overdraft penalty as if it ran before the deposit (x = \(newX)): no serial order explains both"
        )
    }

    /// T1: y += 20, commit.
    private func deposit() async throws {
        let t1 = try await begin(.t1)
        let y = try await readInteger(t1, .t1, "y")
        try await step(.t1, "deposits 20 into y") { try await t1.put("y", Bytes(y + 20)) }
        try await step(.t1, "commits") { try await t1.commit() }
    }

    /// T2: x = newX, commit.
    private func withdraw(_ t2: Transaction, _ newX: Int64) async throws {
        try await step(.t2, "writes x = \(newX) (withdrawal and penalty)") { try await t2.put("x", Bytes(newX)) }
        try await step(.t2, "commits") { try await t2.commit() }
    }
}
