import Foundation
@_spi(Testing) @testable import IsoKV
import IsoKVCore
import Synchronization
import Testing

/// `Database.read`: a synchronous snapshot; `Database.withSnapshot`: the same snapshot lent to an async body. It sees one commit and nothing after it, keeps what it sees from
/// garbage collection until it returns, checks its input, releases its registration however the body ends, and
/// stays consistent under concurrent writers (also under ThreadSanitizer: the suite's name says Concurrent).
@Suite("Read snapshots (Database.read, Database.withSnapshot)")
struct ReadSnapshotConcurrentTests {
    struct Stop: Error {}

    /// Flags and counters shared with the threads below.
    final class Shared: Sendable {
        let entered = Atomic<Bool>(false)
        let proceed = Atomic<Bool>(false)
        let stop = Atomic<Bool>(false)
        let bad = Atomic<Int>(0)
        let reads = Atomic<Int>(0)
        /// Writer tasks that have finished.
        let writersDone = Atomic<Int>(0)

        /// Inside a read's body: says so, then waits (on the reader's own thread) until told to go on, for at most
        /// 600 s (a test that failed before saying so leaves no thread spinning behind it).
        func pause() {
            entered.store(true, ordering: .sequentiallyConsistent)
            let deadline = ContinuousClock.now + .seconds(600)
            while !proceed.load(ordering: .sequentiallyConsistent) && ContinuousClock.now < deadline { usleep(500) }
        }
    }

    /// A thread of its own (a body that waits must not hold one of the few cooperative threads), started when this
    /// is made, not when some task first runs: in a loaded test run a new task can wait tens of seconds for a
    /// cooperative thread, and a reader that never starts would time the test out.
    struct OwnThread<R: Sendable>: Sendable {
        struct NoResult: Error {}
        private let result: AsyncThrowingStream<R, any Error>

        init(_ body: @escaping @Sendable () throws -> R) {
            let (result, continuation) = AsyncThrowingStream<R, any Error>.makeStream()
            self.result = result
            Thread {
                continuation.yield(with: Result { try body() })
                continuation.finish()
            }.start()
        }

        /// What the body returned, or what it threw.
        var value: R {
            get async throws {
                for try await r in result { return r }
                throw NoResult()
            }
        }
    }

    struct TimedOut: Error {}

    /// Waits until `condition` holds, for at most 120 s (then throws `TimedOut`: a regression fails the test
    /// instead of hanging it; the bound is wide because the whole suite runs in parallel on two cores).
    static func until(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TimedOut() }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Runs `check(reader)` in a loop on two threads of their own while `writer(0)` and `writer(1)` run as two
    /// tasks, and at least 20 times in all; returns how many checks failed (a check that throws fails).
    static func failedChecks(
        while writer: @escaping @Sendable (Int) async throws -> Void,
        _ check: @escaping @Sendable (_ reader: Int) throws -> Bool
    ) async throws -> Int {
        let shared = Shared()
        let readers = DispatchGroup()
        for r in 0..<2 {
            readers.enter()
            Thread {
                defer { readers.leave() }
                while !shared.stop.load(ordering: .relaxed) {
                    if (try? check(r)) != true { shared.bad.add(1, ordering: .relaxed) }
                    shared.reads.add(1, ordering: .relaxed)
                }
            }.start()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<2 { group.addTask { try await writer(w) } }
            try await group.waitForAll()
        }
        try await until { shared.reads.load(ordering: .relaxed) >= 20 }
        shared.stop.store(true, ordering: .relaxed)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            readers.notify(queue: .global()) { c.resume() }
        }
        return shared.bad.load(ordering: .relaxed)
    }

    @Test func readsSeeOneCommitAndNothingAfterIt() async throws {
        let db = makeDatabase()
        try await db.put("a", "1")
        try await db.put("b", "1")
        let before = db.statistics().lastCommit
        // Commits made while the snapshot is registered (the reader waits inside its body) are invisible to it.
        let shared = Shared()
        let reader = OwnThread {
            try db.read { snapshot in
                shared.pause()
                return (
                    try snapshot.get("a"), try snapshot.get("b"), snapshot.sequence,
                    try snapshot.scan(KeyRange(from: "a")).map { "\($0.key.string!)=\($0.value.string!)" }
                )
            }
        }
        try await Self.until { shared.entered.load(ordering: .sequentiallyConsistent) }
        try await db.put("a", "2")
        try await db.put("c", "2")
        shared.proceed.store(true, ordering: .sequentiallyConsistent)
        let (a, b, seq, scanned) = try await reader.value
        #expect(a == "1")
        #expect(b == "1")
        #expect(seq == before)
        #expect(scanned == ["a=1", "b=1"])
        // The next snapshot sees both commits.
        #expect(try db.read { try $0.get("a") } == "2")
        #expect(try db.read { try $0.scan(KeyRange(from: "a"), reverse: true).map(\.key) } == ["c", "b", "a"])
        expectConsistent(db)
    }

    @Test func scansHonourTheirLimitAndDirection() async throws {
        let db = makeDatabase()
        for i in 0..<300 { try await db.put(Bytes("k\(1000 + i)"), Bytes("\(i)")) }
        try await db.delete("k1001")
        try db.read { s throws in
            #expect(try s.scan(.prefix("k"), limit: 3).map(\.key) == ["k1000", "k1002", "k1003"])
            #expect(try s.scan(.prefix("k"), limit: 2, reverse: true).map(\.key) == ["k1299", "k1298"])
            #expect(try s.scan(.prefix("k")).count == 299)
            #expect(try s.scan(.prefix("k"), limit: 0).isEmpty)
            #expect(try s.scan(KeyRange(from: "k1100", to: "k1110")).count == 10)
            #expect(try s.get("k1001") == nil)
            #expect(try s.get("nope") == nil)
        }
    }

    @Test func forEachLendsEveryVisibleRowInOrderAndStopsWhenAsked() async throws {
        let db = makeDatabase()
        for i in 0..<300 {
            try await db.put(Bytes("k\(1000 + i)"), Bytes("v\(i)-" + String(repeating: "x", count: i % 40)))
        }
        try await db.delete("k1001")
        try await db.put("other", "o")
        try db.read { s throws in
            var seen: [KeyValue] = []
            let n = try s.forEach(.prefix("k")) { key, value in
                seen.append(KeyValue(key: key, value: Bytes(Array(value))))
                return true
            }
            #expect(n == 299)
            #expect(seen == (try s.scan(.prefix("k"))))
            var reversed: [Bytes] = []
            try s.forEach(.prefix("k"), limit: 3, reverse: true) { key, _ in
                reversed.append(key)
                return true
            }
            #expect(reversed == ["k1299", "k1298", "k1297"])
            // The body stops the walk: the row it returned false for is the last one given.
            var given = 0
            #expect(
                try s.forEach(.prefix("k")) { _, _ in
                    given += 1; return given < 5
                } == 5)
            #expect(given == 5)
            #expect(try s.forEach(.prefix("k"), limit: 0) { _, _ in true } == 0)
        }
        await expectCode(.invalidInput) { try db.read { try $0.forEach(.prefix("k"), limit: -1) { _, _ in true } } }
        do {
            _ = try db.read { s throws in try s.forEach(.prefix("k")) { _, _ in throw Stop() } }
            Issue.record("expected Stop")
        } catch {
            #expect(error is Stop)
        }
        #expect(db.statistics().liveSnapshots == 0)
    }

    /// Pairs of keys created together and deleted together, their names reused (so garbage collection retires
    /// their chains and a later pair gets a new chain for the same key while readers walk older index versions):
    /// every snapshot's in-place walk sees both keys of a pair or neither, with equal values, exactly what its
    /// `scan` returns, and exactly what point reads of every possible key (through the key directory, not the
    /// index) find at the same snapshot.
    @Test func concurrentForEachSeesPairsWhole() async throws {
        let db = makeDatabase()
        let names = 6
        let universe = (0..<2).flatMap { w in
            (0..<names).flatMap { n in ["a", "b"].map { Bytes("p/\(w)-\(n)/\($0)") } }
        }
        let failed = try await Self.failedChecks(while: { w in
            for i in 0..<300 {
                let pair = "p/\(w)-\(i % names)"
                try await db.transaction(.snapshot) { tx in
                    try await tx.put(Bytes(pair + "/a"), Bytes("\(i)"))
                    try await tx.put(Bytes(pair + "/b"), Bytes("\(i)"))
                }
                if i >= 3 {
                    let old = "p/\(w)-\((i - 3) % names)"
                    try await db.transaction(.snapshot) { tx in
                        try await tx.delete(Bytes(old + "/a"))
                        try await tx.delete(Bytes(old + "/b"))
                    }
                }
            }
        }) { r in
            try db.read { s throws -> Bool in
                var rows: [KeyValue] = []
                try s.forEach(.prefix("p/"), reverse: r == 1) { key, value in
                    rows.append(KeyValue(key: key, value: Bytes(Array(value))))
                    return true
                }
                let scanned = try s.scan(.prefix("p/"), reverse: r == 1)
                var byKey: [Bytes: Bytes] = [:]
                for row in rows { byKey[row.key] = row.value }
                var pointReads: [Bytes: Bytes] = [:]
                for key in universe { if let v = try s.get(key) { pointReads[key] = v } }
                var pairs: [String: [Bytes]] = [:]
                for row in rows { pairs[String(row.key.string!.dropLast(2)), default: []].append(row.value) }
                return rows == scanned && byKey == pointReads
                    && pairs.values.allSatisfy { $0.count == 2 && $0[0] == $0[1] }
            }
        }
        #expect(failed == 0)
        #expect(try db.read { try $0.scan(.prefix("p/")).count } == 2 * 2 * 3)
        expectConsistent(db)
    }

    @Test func versionsItCanSeeOutliveConcurrentUpdatesUntilItReturns() async throws {
        let db = makeDatabase()
        try await db.put("k", "old")
        let shared = Shared()
        let reader = OwnThread {
            try db.read { s throws in
                let registered = db.statistics().liveSnapshots
                shared.pause()
                return (registered, try s.get("k"), try s.scan(.prefix("k")).map(\.value))
            }
        }
        try await Self.until { shared.entered.load(ordering: .sequentiallyConsistent) }
        for i in 0..<50 { try await db.put("k", Bytes("new\(i)")) }
        // Fifty updates later, GC has kept the version the snapshot sees (and, the horizon being the oldest
        // snapshot, every newer one).
        #expect(db.statistics().versions == 51)
        shared.proceed.store(true, ordering: .sequentiallyConsistent)
        let (registered, got, scanned) = try await reader.value
        #expect(registered == 1)
        #expect(got == "old")
        #expect(scanned == ["old"])
        #expect(db.statistics().liveSnapshots == 0)
        // Released: GC keeps only the newest version from now on.
        try await db.put("k", "newest")
        #expect(db.statistics().versions == 1)
        expectConsistent(db)
    }

    @Test func badInputThrowsTypedErrorsAndReleasesTheSnapshot() async throws {
        let db = makeDatabase(limits: Limits(maxKeySize: 8))
        try await db.put("k", "v")
        await expectCode(.invalidInput) { try db.read { try $0.get("") } }
        await expectCode(.limitExceeded) { try db.read { try $0.get("123456789") } }
        await expectCode(.invalidInput) { try db.read { try $0.scan(.prefix("k"), limit: -1) } }
        await expectCode(.invalidInput) {
            try db.read { try $0.scan(.prefix("k"), limit: db.configuration.limits.maxScanLimit + 1) }
        }
        // The body's own error comes back as thrown (typed), and the registration ends with it.
        do {
            try db.read { (_: borrowing ReadSnapshot) throws(Stop) in throw Stop() }
            Issue.record("expected Stop")
        } catch {
            let stop: Stop = error  // typed throws: the error is a Stop, statically
            _ = stop
        }
        #expect(db.statistics().liveSnapshots == 0)
        #expect(db.check(.quiescent).findings.isEmpty)
    }

    /// 300 transfers of 1 between accounts `acct/0` … `acct/<accounts - 1>` (writer `w` moves to the account `w + 1`
    /// further on), each a `.snapshot` transaction: the total never changes.
    static func transfers(_ db: Database, accounts: Int, writer w: Int) async throws {
        for _ in 0..<300 {
            let from = Int.random(in: 0..<accounts)
            let to = (from + 1 + w) % accounts
            try await db.transaction(.snapshot) { tx in
                let a = try await tx.get(Bytes("acct/\(from)"))!.int64!
                let b = try await tx.get(Bytes("acct/\(to)"))!.int64!
                try await tx.put(Bytes("acct/\(from)"), Bytes(a - 1))
                try await tx.put(Bytes("acct/\(to)"), Bytes(b + 1))
            }
        }
    }

    /// Transfers between accounts keep the total; every read snapshot, taken on threads of their own while the
    /// transfers commit, sees the total exactly — by gets and by a scan (forward on one thread, reverse on the
    /// other).
    @Test func concurrentSnapshotsSeeConsistentTotals() async throws {
        let db = makeDatabase()
        let accounts = 16
        for i in 0..<accounts { try await db.put(Bytes("acct/\(i)"), Bytes(Int64(100))) }
        let total = Int64(100 * accounts)
        let failed = try await Self.failedChecks(while: { w in
            try await Self.transfers(db, accounts: accounts, writer: w)
        }) { r in
            try db.read { s throws -> Bool in
                var sum: Int64 = 0
                for i in 0..<accounts { sum += try s.get(Bytes("acct/\(i)"))?.int64 ?? 0 }
                let scanned = try s.scan(.prefix("acct/"), reverse: r == 1).reduce(Int64(0)) {
                    $0 + ($1.value.int64 ?? 0)
                }
                return sum == total && scanned == total
            }
        }
        #expect(failed == 0)
        #expect(db.statistics().liveSnapshots == 0)
        expectConsistent(db)
    }

    // MARK: withSnapshot (async body)

    @Test func withSnapshotKeepsOneSnapshotAcrossSuspensions() async throws {
        let db = makeDatabase()
        try await db.put("a", "1")
        try await db.put("b", "1")
        let before = db.statistics().lastCommit
        let (a1, a2, b, seq, scanned) = try await db.withSnapshot { snapshot in
            let a1 = try snapshot.get("a")
            // Another task commits while the body is suspended on it.
            try await Task {
                try await db.put("a", "2")
                try await db.put("c", "2")
            }.value
            await Task.yield()
            return (
                a1, try snapshot.get("a"), try snapshot.get("b"), snapshot.sequence,
                try snapshot.scan(KeyRange(from: "a")).map { "\($0.key.string!)=\($0.value.string!)" }
            )
        }
        #expect(a1 == "1")
        #expect(a2 == "1")
        #expect(b == "1")
        #expect(seq == before)
        #expect(scanned == ["a=1", "b=1"])
        #expect(try await db.withSnapshot { try $0.get("a") } == "2")
        #expect(db.statistics().liveSnapshots == 0)
        expectConsistent(db)
    }

    @Test func withSnapshotKeepsWhatItSeesFromGarbageCollectionUntilItReturns() async throws {
        let db = makeDatabase()
        try await db.put("k", "old")
        let (registered, versions, got) = try await db.withSnapshot { s in
            let registered = db.statistics().liveSnapshots
            for i in 0..<50 { try await db.put("k", Bytes("new\(i)")) }
            return (registered, db.statistics().versions, try s.get("k"))
        }
        #expect(registered == 1)
        #expect(versions == 51)
        #expect(got == "old")
        #expect(db.statistics().liveSnapshots == 0)
        try await db.put("k", "newest")
        #expect(db.statistics().versions == 1)
        expectConsistent(db)
    }

    @Test func withSnapshotReleasesItsSnapshotOnErrorsAndCancellation() async throws {
        let db = makeDatabase(limits: Limits(maxKeySize: 8))
        try await db.put("k", "v")
        await expectCode(.invalidInput) { try await db.withSnapshot { try $0.get("") } }
        await expectCode(.limitExceeded) { try await db.withSnapshot { try $0.get("123456789") } }
        await expectCode(.invalidInput) { try await db.withSnapshot { try $0.scan(.prefix("k"), limit: -1) } }
        do {
            try await db.withSnapshot { (_: borrowing ReadSnapshot) async throws(Stop) in throw Stop() }
            Issue.record("expected Stop")
        } catch {
            let stop: Stop = error  // typed throws, as in `read`
            _ = stop
        }
        // A cancelled task: the body sees the cancellation at its next check and the snapshot is released.
        let shared = Shared()
        let task = Task {
            try await db.withSnapshot { s in
                shared.entered.store(true, ordering: .sequentiallyConsistent)
                while !Task.isCancelled { await Task.yield() }
                try Task.checkCancellation()
                return try s.get("k")
            }
        }
        defer { task.cancel() }
        try await Self.until { shared.entered.load(ordering: .sequentiallyConsistent) }
        #expect(db.statistics().liveSnapshots == 1)
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(db.statistics().liveSnapshots == 0)
        #expect(db.check(.quiescent).findings.isEmpty)
    }

    /// Transfers keep the total; async snapshots in two tasks, each yielding between its reads while two other
    /// tasks commit transfers, see the total exactly.
    @Test func concurrentAsyncSnapshotsSeeConsistentTotals() async throws {
        let db = makeDatabase()
        let accounts = 16
        for i in 0..<accounts { try await db.put(Bytes("acct/\(i)"), Bytes(Int64(100))) }
        let total = Int64(100 * accounts)
        let shared = Shared()
        let failed = try await withThrowingTaskGroup(of: Int.self) { group in
            for w in 0..<2 {
                group.addTask {
                    defer { shared.writersDone.add(1, ordering: .sequentiallyConsistent) }
                    try await Self.transfers(db, accounts: accounts, writer: w)
                    return 0
                }
            }
            for r in 0..<2 {
                group.addTask {
                    var failed = 0
                    var reads = 0
                    while shared.writersDone.load(ordering: .sequentiallyConsistent) < 2 || reads < 20 {
                        let ok = try await db.withSnapshot { s in
                            var sum: Int64 = 0
                            for i in 0..<accounts {
                                sum += try s.get(Bytes("acct/\(i)"))?.int64 ?? 0
                                if i % 4 == 0 { await Task.yield() }
                            }
                            let scanned = try s.scan(.prefix("acct/"), reverse: r == 1).reduce(Int64(0)) {
                                $0 + ($1.value.int64 ?? 0)
                            }
                            return sum == total && scanned == total
                        }
                        if !ok { failed += 1 }
                        reads += 1
                    }
                    return failed
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(failed == 0)
        #expect(db.statistics().liveSnapshots == 0)
        expectConsistent(db)
    }
}
