import Foundation
import IsoKVCore
import IsoKVHistory
@_spi(Testing) import IsoKVPostgres
import IsoKVTestSupport
import Testing

/// The randomized bank of the engine's serializable tests on PostgreSQL: transfers and withdrawals guarded by a pair
/// rule (a + b ≥ 0, write-skew prone), room bookings by scan + insert (at most one per room), cancellations, and
/// read-only audits, from many tasks; every attempt is recorded with `HistoryRecorder` and checked with
/// `HistoryChecker`. At serializable the checker finds no cycle and the invariants hold; at repeatable read it finds
/// write skew (G2-item). Values carry their writer ("balance:txid"), so each read names the version it saw; writes
/// record the version PostgreSQL assigned (the version sequence, taken under the row lock, so in commit order per key).
///
/// Size: `ISOKV_PG_HISTORY_TXNS` transactions at serializable (default 2 000) and half of that at repeatable read.
@Suite("Postgres bank history", .enabled(if: PostgresTestEnvironment.isAvailable, PostgresTestEnvironment.skipReason))
struct PostgresHistoryTests {
    static let pairs = 8
    static let rooms = 4
    static let tasks = 8

    static var count: Int {
        if let s = ProcessInfo.processInfo.environment["ISOKV_PG_HISTORY_TXNS"], let n = Int(s), n > 0 { return n }
        return 2_000
    }

    static func account(_ pair: Int, _ side: Int) -> Bytes { Bytes("acct/\(pair)/\(side == 0 ? "a" : "b")") }
    static func encode(_ balance: Int64, _ writer: TransactionID) -> Bytes { Bytes("\(balance):\(writer.rawValue)") }
    static func decode(_ v: Bytes) -> (balance: Int64, writer: UInt64) {
        let parts = v.string!.split(separator: ":")
        return (Int64(parts[0])!, UInt64(parts[1])!)
    }

    struct Outcome: Sendable {
        var committed = 0
        var aborted = 0
        var auditViolations = 0
    }

    /// One attempt of a random operation, recorded.
    static func attempt(
        _ store: PostgresStore, _ level: IsolationLevel, _ recorder: HistoryRecorder,
        _ rng: inout SplitMix64, _ outcome: inout Outcome
    ) async throws {
        let op = rng.next() % 100
        let readOnly = op >= 90
        let tx = try await store.begin(level, readOnly: readOnly)
        var rec = TransactionRecord(id: tx.id.rawValue, level: level == .serializable ? .serializable : .snapshot)
        var installed: [HistoryKey: Int] = [:]
        func get(_ key: Bytes) async throws -> Int64? {
            guard let v = try await tx.get(key) else { rec.read(HistoryKey(bytes: key.bytes), .initial); return nil }
            let d = decode(v)
            rec.read(HistoryKey(bytes: key.bytes), .writer(d.writer))
            return d.balance
        }
        func put(_ key: Bytes, _ balance: Int64) async throws {
            let version = try await tx.putReturningVersion(key, encode(balance, tx.id))
            rec.write(HistoryKey(bytes: key.bytes))
            installed[HistoryKey(bytes: key.bytes)] = Int(version)
        }
        func scan(_ prefix: String) async throws -> [KeyValue] {
            let rows = try await tx.scan(prefix: Bytes(prefix))
            rec.scan(
                IsoKVHistory.KeyRange(prefix: HistoryKey(prefix)),
                results: rows.map {
                    ScanEntry(HistoryKey(bytes: $0.key.bytes), .writer(decode($0.value).writer))
                })
            return rows
        }
        do {
            let amount = Int64(rng.next() % 10 + 1)
            switch op {
            case 0..<40:  // transfer, guarded by the source pair's rule
                let p = Int(rng.next() % UInt64(pairs)), side = Int(rng.next() % 2)
                let q = Int(rng.next() % UInt64(pairs)), qs = Int(rng.next() % 2)
                let from = account(p, side), partner = account(p, 1 - side), to = account(q, qs)
                let f = try await get(from)!, pa = try await get(partner)!
                let t = from == to ? f : try await get(to)!
                if from != to && f + pa - amount >= 0 {
                    try await put(from, f - amount)
                    try await put(to, t + amount)
                }
            case 40..<65:  // withdrawal from one side, guarded by the pair's sum: write skew prone
                let p = Int(rng.next() % UInt64(pairs)), side = Int(rng.next() % 2)
                let mine = try await get(account(p, side))!, other = try await get(account(p, 1 - side))!
                if mine + other - amount >= 0 { try await put(account(p, side), mine - amount) }
            case 65..<78:  // deposit
                let p = Int(rng.next() % UInt64(pairs)), side = Int(rng.next() % 2)
                let b = try await get(account(p, side))!
                try await put(account(p, side), b + amount)
            case 78..<90:  // book a room if free (scan + insert), or cancel its booking
                let r = Int(rng.next() % UInt64(rooms))
                let rows = try await scan("room/\(r)/")
                if rows.isEmpty {
                    let key = Bytes("room/\(r)/\(tx.id.rawValue)")
                    let version = try await tx.insertReturningVersion(key, encode(0, tx.id))
                    rec.write(HistoryKey(bytes: key.bytes))
                    installed[HistoryKey(bytes: key.bytes)] = Int(version)
                } else if rng.next() % 2 == 0 {
                    let version = try await tx.deleteReturningVersion(rows[0].key)!
                    rec.delete(HistoryKey(bytes: rows[0].key.bytes))
                    installed[HistoryKey(bytes: rows[0].key.bytes)] = Int(version)
                }
            default:  // read-only audit of two pairs' rule (one by a scan) and of one room
                let p = Int(rng.next() % UInt64(pairs))
                let rows = try await scan("acct/\(p)/")
                if rows.map({ decode($0.value).balance }).reduce(0, +) < 0 { outcome.auditViolations += 1 }
                let q = Int(rng.next() % UInt64(pairs))
                if try await get(account(q, 0))! + (try await get(account(q, 1))!) < 0 { outcome.auditViolations += 1 }
                if try await scan("room/\(Int(rng.next() % UInt64(rooms)))/").count > 1 { outcome.auditViolations += 1 }
            }
            try await tx.commit()
            rec.commit(order: nil, installed: installed)
            outcome.committed += 1
        } catch let e as IsoKVError where e.isRetryable {
            try? await tx.rollback()
            rec.abort(code: e.code.rawValue)
            outcome.aborted += 1
        }
        try recorder.record(rec)
    }

    static func run(_ store: PostgresStore, _ level: IsolationLevel, transactions: Int) async throws -> (
        History, Outcome
    ) {
        let recorder = HistoryRecorder()
        // Seed: every account 10, recorded as a committed transaction.
        let seed = try await store.begin(.serializable)
        var seedRec = TransactionRecord(id: seed.id.rawValue, level: .serializable)
        var installed: [HistoryKey: Int] = [:]
        for p in 0..<pairs {
            for s in 0..<2 {
                installed[HistoryKey(bytes: account(p, s).bytes)] = Int(
                    try await seed.putReturningVersion(account(p, s), encode(10, seed.id)))
                seedRec.write(HistoryKey(bytes: account(p, s).bytes))
            }
        }
        try await seed.commit()
        seedRec.commit(order: nil, installed: installed)
        try recorder.record(seedRec)
        let per = max(1, transactions / tasks)
        let outcome = try await withThrowingTaskGroup(of: Outcome.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    var rng = SplitMix64(seed: UInt64(t) &* 0x9E37_79B9_7F4A_7C15 &+ 1)
                    var o = Outcome()
                    for _ in 0..<per { try await attempt(store, level, recorder, &rng, &o) }
                    return o
                }
            }
            var total = Outcome()
            for try await o in group {
                total.committed += o.committed; total.aborted += o.aborted; total.auditViolations += o.auditViolations
            }
            return total
        }
        return (recorder.history, outcome)
    }

    static func finalViolations(_ store: PostgresStore) async throws -> Int {
        try await store.transaction(.serializable, readOnly: true) { tx in
            var bad = 0
            for p in 0..<pairs {
                let a = decode(try await tx.get(account(p, 0))!).balance,
                    b = decode(try await tx.get(account(p, 1))!).balance
                if a + b < 0 { bad += 1 }
            }
            for r in 0..<rooms where try await tx.scan(prefix: Bytes("room/\(r)/")).count > 1 { bad += 1 }
            return bad
        }
    }

    @Test("serializable: no cycle in the history, invariants hold")
    func serializableHasNoCycle() async throws {
        try await PostgresTestEnvironment.withStore({ $0.client.options.maximumConnections = Self.tasks + 2 }) {
            store in
            let (history, outcome) = try await Self.run(store, .serializable, transactions: Self.count)
            #expect(outcome.committed + outcome.aborted >= Self.count - Self.tasks)
            #expect(outcome.committed > outcome.aborted)
            #expect(outcome.auditViolations == 0)
            #expect(try await Self.finalViolations(store) == 0)
            let result = try HistoryChecker.check(history, at: .serializable)
            #expect(result.isValid, "\(result.summary(maxCycles: 5))")
            #expect(result.stats.transactions > Self.count / 2, "\(result.stats)")
            print(
                "PostgreSQL serializable bank: \(outcome.committed) committed, \(outcome.aborted) aborted (40001/40P01); no cycle"
            )
        }
    }

    @Test("repeatable read: the checker finds write skew (G2-item) and nothing snapshot isolation forbids")
    func repeatableReadHasWriteSkew() async throws {
        try await PostgresTestEnvironment.withStore({ $0.client.options.maximumConnections = Self.tasks + 2 }) {
            store in
            let (history, outcome) = try await Self.run(store, .snapshot, transactions: Self.count / 2)
            let result = try HistoryChecker.check(history, at: .serializable)
            print(
                "PostgreSQL repeatable-read bank: \(outcome.committed) committed, \(outcome.aborted) aborted; found \(result.phenomena)"
            )
            #expect(result.phenomena.contains(.g2Item), "\(result.summary(maxCycles: 3))")
            #expect(try HistoryChecker.check(history, at: .snapshot).isValid)
        }
    }
}
