@testable import IsoKV
import IsoKVSync
import IsoKVTestSupport
import Testing

/// Readers of the published scan index against a writer changing it: every version a reader sees is exactly the
/// model's state after some operation, between the operations finished before and after the read.
@Suite("Scan index readers vs writers (Concurrent)")
struct ScanIndexConcurrentTests {
    @Test func readersSeeExactlyOnePublishedStateAtATime() async throws {
        var rng = SplitMix64(seed: testSeed("ScanIndexConcurrentTests.readersSeeExactlyOnePublishedState"))
        let n = 3000
        var permutation = Array(0..<n)
        permutation.shuffle(using: &rng)
        let keys = permutation.map { Bytes("key\(1_000_000 + $0)") }
        // Operation k (1-based): k ≤ n inserts keys[k-1]; k > n removes keys[k-n-1]. State after k is
        // keys[0..<k] (k ≤ n) or keys[k-n..<n].
        let index = ScanIndex()
        let chains = keys.map { KeyChain.make(key: $0) }
        let chainOf = Dictionary(uniqueKeysWithValues: zip(keys, chains))
        let done = Locked(0)
        let failures = Locked<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for k in 1...(2 * n) {
                    index.withWriterLock { w in
                        if k <= n { w.insert(keys[k - 1], chains[k - 1]) } else { w.remove(keys[k - n - 1]) }
                    }
                    done.withLock { $0 = k }
                    if k % 64 == 0 { await Task.yield() }
                }
            }
            for _ in 0..<2 {
                group.addTask {
                    var reads = 0
                    while done.withLock({ $0 }) < 2 * n || reads < 10 {
                        let before = done.withLock { $0 }
                        let seen = index.read { idx in idx.entries(in: .all, after: nil, reverse: false, max: .max) }
                        let after = done.withLock { $0 }
                        reads += 1
                        let c = seen.count
                        // The writer counts an operation just after publishing it: the version read may be one ahead.
                        let candidates = [c, 2 * n - c].filter { $0 >= before && $0 <= after + 1 }
                        let matches = candidates.contains { k in
                            let expected = k <= n ? keys[0..<k] : keys[(k - n)..<n]
                            return seen.map(\.key) == expected.sorted()
                                && seen.allSatisfy { e in e.value === chainOf[e.key] }
                        }
                        if !matches {
                            failures.withLock {
                                $0.append("read \(reads): \(c) keys, operations done \(before)...\(after)")
                            }
                            return
                        }
                        await Task.yield()
                    }
                }
            }
            try await group.waitForAll()
        }
        let found = failures.withLock { $0 }
        #expect(found.isEmpty, "\(found.prefix(5))")
        #expect(index.count == 0)
    }

    /// Snapshot scans while other tasks create keys: each scan returns, in order, exactly the keys committed before
    /// its transaction began plus possibly some committed later (never one that was not committed), and the
    /// database checks clean afterwards.
    @Test func snapshotScansSeeEveryKeyCommittedBeforeThem() async throws {
        let db = Database.inMemory()
        let writers = 2, perWriter = 400
        let committed = Locked(0)
        // Writer w writes keys "s<w>-<i>" in order i = 0, 1, …, so committed keys of a writer are a prefix.
        let progress = Locked<[Int]>(Array(repeating: 0, count: writers))
        let failures = Locked<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<writers {
                group.addTask {
                    for i in 0..<perWriter {
                        try await db.put(Bytes("s\(w)-\(1000 + i)"), Bytes("v\(i)"))
                        progress.withLock { $0[w] = i + 1 }
                        committed.withLock { $0 += 1 }
                    }
                }
            }
            for _ in 0..<2 {
                group.addTask {
                    while committed.withLock({ $0 }) < writers * perWriter {
                        let floor = progress.withLock { $0 }
                        let rows = try await db.transaction(.snapshot, readOnly: true) { tx in
                            try await tx.scan(prefix: "s")
                        }
                        let ceiling = progress.withLock { $0 }
                        let keys = rows.map(\.key)
                        var problem: String?
                        if keys != keys.sorted() { problem = "scan not in key order" }
                        for w in 0..<writers {
                            let mine = keys.filter { $0.string!.hasPrefix("s\(w)-") }
                            let expected = (0..<mine.count).map { Bytes("s\(w)-\(1000 + $0)") }
                            if mine != expected { problem = "writer \(w): not a prefix of its keys" }
                            // A put is visible a moment before its writer counts it: at most one more than counted.
                            if mine.count < floor[w] || mine.count > ceiling[w] + 1 {
                                problem = "writer \(w): \(mine.count) keys, committed \(floor[w])...\(ceiling[w])"
                            }
                        }
                        if let problem {
                            failures.withLock { $0.append(problem) }
                            return
                        }
                        await Task.yield()
                    }
                }
            }
            try await group.waitForAll()
        }
        let found = failures.withLock { $0 }
        #expect(found.isEmpty, "\(found.prefix(5))")
        let all = try await db.transaction(.snapshot) { tx in try await tx.scan() }
        #expect(all.count == writers * perWriter)
        #expect(db.check().findings.isEmpty)
    }
}
