@_spi(Testing) import IsoKV
import Testing
import IsoKVTestSupport

/// Randomized bank transfers at `.snapshot`: the total never changes, and every committed transaction's reads are
/// consistent with one snapshot (each transfer also scans every account and must see the exact total).
enum BankStress {
    static func run<S: TestableStore>(_ store: S, accounts: Int, workers: Int, transfersPerWorker: Int) async throws {
        let initial: Int64 = 100
        try await seed(store, (0..<accounts).map { (key($0), Bytes(initial)) })
        let total = initial * Int64(accounts)
        let policy = RetryPolicy(maxAttempts: 10_000, baseDelay: .microseconds(50), maxDelay: .milliseconds(2))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<workers {
                group.addTask {
                    var rng = SplitMix64(seed: UInt64(w + 1))
                    for _ in 0..<transfersPerWorker {
                        let from = Int(rng.next() % UInt64(accounts))
                        var to = Int(rng.next() % UInt64(accounts))
                        if to == from { to = (to + 1) % accounts }
                        let amount = Int64(rng.next() % 20)
                        let seen = try await store.transaction(.snapshot, retry: policy) { tx in
                            let a = try await tx.get(key(from))!.int64!
                            let b = try await tx.get(key(to))!.int64!
                            try await tx.put(key(from), Bytes(a - amount))
                            try await tx.put(key(to), Bytes(b + amount))
                            // Reads of the whole table in the same transaction (own writes included).
                            return try await tx.scan(prefix: "acct/").reduce(Int64(0)) { $0 + $1.value.int64! }
                        }
                        #expect(seen == total)
                    }
                }
            }
            for _ in 0..<2 {
                group.addTask {
                    for _ in 0..<transfersPerWorker / 2 {
                        let seen = try await store.transaction(.snapshot, readOnly: true) { tx in
                            var sum: Int64 = 0
                            for i in 0..<accounts { sum += try await tx.get(key(i))!.int64! }
                            return sum
                        }
                        #expect(seen == total)
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = try await store.transaction(.snapshot) { tx in
            try await tx.scan(prefix: "acct/").reduce(Int64(0)) { $0 + $1.value.int64! }
        }
        #expect(final == total)
    }

    static func key(_ i: Int) -> Bytes { Bytes("acct/\(i)") }
}

@Suite("Bank transfers (Stress)", .timeLimit(.minutes(2)))
struct BankStressTests {
    /// In strict mode: every commit also runs the concurrent consistency check (XX000 on any finding).
    @Test func totalIsConstantAndReadsAreOneSnapshot() async throws {
        let db = Database.inMemory(Database.Configuration(checkAfterEveryCommit: true))
        try await BankStress.run(db, accounts: 16, workers: 8, transfersPerWorker: 150)
        let s = db.statistics()
        #expect(s.pendingWrites == 0)
        #expect(s.liveSnapshots == 0)
        #expect(s.versions == 16)
        expectConsistent(db)
    }
}
