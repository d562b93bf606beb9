@testable import IsoKV
import IsoKVTestSupport
import Testing

@Suite("Ordered key index")
struct OrderedKeysTests {
    @Test func matchesASortedReference() {
        var idx = OrderedKeys()
        var reference = Set<Bytes>()
        var rng = SplitMix64(seed: testSeed("OrderedKeysTests.matchesASortedReference"))
        for _ in 0..<5000 {
            let k = Bytes("key\(Int.random(in: 0..<1500, using: &rng))")
            if Bool.random(using: &rng) {
                idx.insert(k); reference.insert(k)
            } else {
                idx.remove(k); reference.remove(k)
            }
        }
        let sorted = reference.sorted()
        #expect(idx.keys(in: .all, after: nil, reverse: false, max: .max) == sorted)
        #expect(idx.keys(in: .all, after: nil, reverse: true, max: .max) == sorted.reversed())
        #expect(idx.count == sorted.count)
        let r = KeyRange(from: "key3", to: "key6")
        #expect(idx.keys(in: r, after: nil, reverse: false, max: .max) == sorted.filter { r.contains($0) })
        #expect(idx.keys(in: r, after: nil, reverse: true, max: .max) == sorted.filter { r.contains($0) }.reversed())
        // Paging with a cursor gives the same keys.
        var paged: [Bytes] = []
        var cursor: Bytes?
        while true {
            let page = idx.keys(in: .all, after: cursor, reverse: false, max: 7)
            if page.isEmpty { break }
            paged += page
            cursor = page.last
        }
        #expect(paged == sorted)
        for k in sorted.prefix(50) { #expect(idx.contains(k)) }
    }
}

/// The persistent B+tree under the scan index: random inserts and removes against a sorted model, with the
/// structural invariants checked after every change, and old versions unchanged by later changes.
@Suite("Persistent ordered index")
struct PersistentOrderedIndexTests {
    @Test func randomChangesMatchTheModelAndKeepEveryOldVersion() {
        var rng = SplitMix64(seed: testSeed("PersistentOrderedIndexTests.randomChanges"))
        var idx = OrderedIndex<Tagged>()
        var model: [Bytes: Int] = [:]
        var frozen: [(OrderedIndex<Tagged>, [(Bytes, Int)])] = []
        for step in 0..<6000 {
            // Mostly inserts early (the tree grows to 3 levels), mostly removes late (nodes empty and vanish).
            // Half the keys are long (held by the entry's value, compared as bytes), half inline, interleaved.
            let n = rng.next() % 4000
            let k = Bytes(n % 2 == 0 ? "k\(n)" : "k\(n)-with-a-long-suffix")
            let insert = rng.next() % 100 < (step < 4000 ? 80 : 25)
            if insert {
                idx.insert(k, Tagged(k, step))
                model[k] = step
            } else {
                let removed = idx.remove(k)
                #expect(removed == (model.removeValue(forKey: k) != nil))
            }
            if step % 10 == 0 || step > 5950, let problem = idx.structuralProblem() {
                Issue.record("step \(step): \(problem)")
                return
            }
            if step % 500 == 0 { frozen.append((idx, model.sorted { $0.key < $1.key })) }
        }
        let sorted = model.sorted { $0.key < $1.key }
        let all = idx.entries(in: .all, after: nil, reverse: false, max: .max)
        #expect(all.map(\.key) == sorted.map(\.0))
        #expect(all.map(\.value.tag) == sorted.map(\.1))
        #expect(idx.count == model.count)
        for (old, expected) in frozen {
            let entries = old.entries(in: .all, after: nil, reverse: false, max: .max)
            #expect(entries.map(\.key) == expected.map(\.0))
            #expect(entries.map(\.value.tag) == expected.map(\.1))
        }
        for (k, v) in sorted.prefix(200) { #expect(idx.value(for: k)?.tag == v) }
        #expect(idx.value(for: "absent") == nil)
    }

    @Test func rangesCursorsAndReverseMatchTheModel() {
        var rng = SplitMix64(seed: testSeed("PersistentOrderedIndexTests.ranges"))
        var idx = OrderedKeys()
        var keys = Set<Bytes>()
        // A third of the keys (and of the bounds and cursors) are long: compared as bytes with the inline ones.
        func key(_ n: UInt64) -> Bytes { Bytes(n % 3 == 0 ? "r\(n)-a-long-suffix" : "r\(n)") }
        for _ in 0..<3000 {
            let k = key(rng.next() % 10_000)
            idx.insert(k)
            keys.insert(k)
        }
        let sorted = keys.sorted()
        for _ in 0..<200 {
            let a = key(rng.next() % 12_000), b = key(rng.next() % 12_000)
            let range = KeyRange(from: Swift.min(a, b), to: Swift.max(a, b))
            let inRange = sorted.filter { range.contains($0) }
            #expect(idx.keys(in: range, after: nil, reverse: false, max: .max) == inRange)
            #expect(idx.keys(in: range, after: nil, reverse: true, max: .max) == inRange.reversed())
            // By runs (the scan's grouped path): the same keys, each run non-empty and within one leaf.
            var byRuns: [Bytes] = []
            var runs = 0
            idx.forEachRunInPlace(in: range) { run in
                #expect(!run.isEmpty && run.count <= OrderedKeys.maxLeaf)
                byRuns += run.map(\.key)
                runs += 1
                return true
            }
            #expect(byRuns == inRange)
            if !inRange.isEmpty {  // stopping after the first run
                var first: [Bytes] = []
                idx.forEachRunInPlace(in: range) { run in
                    first = run.map(\.key)
                    return false
                }
                #expect(first == Array(inRange.prefix(first.count)) && !first.isEmpty)
            }
            // A cursor is a key of the range (a previous page's last key).
            let cursor = key(rng.next() % 12_000)
            guard range.contains(cursor) else { continue }
            #expect(
                idx.keys(in: range, after: cursor, reverse: false, max: 17)
                    == Array(inRange.filter { cursor < $0 }.prefix(17)))
            #expect(
                idx.keys(in: range, after: cursor, reverse: true, max: 17)
                    == Array(inRange.filter { $0 < cursor }.reversed().prefix(17)))
        }
        #expect(idx.keys(in: .all, after: nil, reverse: false, max: 0) == [])
    }

    /// A node built by an insert or a removal holds exactly its slots: inserting into a copy of a shared array
    /// would double its capacity (the append growth policy), leaving up to half of every node empty for good.
    @Test func nodesBuiltByChangesAreExactlySized() {
        var rng = SplitMix64(seed: testSeed("PersistentOrderedIndexTests.exact"))
        var idx = OrderedKeys()
        for _ in 0..<20_000 { idx.insert(Bytes("x\(rng.next() % 100_000)")) }
        for _ in 0..<2_000 { idx.remove(Bytes("x\(rng.next() % 100_000)")) }
        #expect(idx.structuralProblem() == nil)
        var nodes = 0
        var slack = 0
        func walk(_ node: OrderedKeys.Node) {
            nodes += 1
            // (malloc rounds a buffer up to 16 bytes: at most one spare slot of 8 bytes.)
            slack = Swift.max(slack, node.entries.capacity - node.entries.count)
            slack = Swift.max(slack, node.separators.capacity - node.separators.count)
            slack = Swift.max(slack, node.children.capacity - node.children.count)
            node.children.forEach(walk)
        }
        walk(idx.root!)
        #expect(nodes > 300)
        #expect(slack <= 1, "a node has \(slack) spare slots")
    }

    /// Ascending inserts (a load in key order) fill leaves instead of leaving each half empty, and the tree stays
    /// valid with every key present; interleaved with random inserts, which still split in half, it stays valid too.
    @Test func ascendingInsertsFillTheLeaves() {
        var idx = OrderedKeys()
        let n = 20_000
        for i in 0..<n { idx.insert(Bytes(String(format: "k%08d", i))) }
        #expect(idx.structuralProblem() == nil)
        let (leaves, entries) = idx.leafOccupancy()
        #expect(entries == n)
        let minimum = (n + OrderedKeys.maxLeaf - 1) / OrderedKeys.maxLeaf
        #expect(leaves <= minimum + 1, "\(leaves) leaves for \(n) keys (at least \(minimum))")
        // Descending and random inserts keep the invariants (they split in half).
        var rng = SplitMix64(seed: testSeed("PersistentOrderedIndexTests.ascending"))
        var model = Set((0..<n).map { Bytes(String(format: "k%08d", $0)) })
        for i in 0..<5000 {
            let k = i % 2 == 0 ? Bytes(String(format: "j%08d", 10_000 - i)) : Bytes("k\(rng.next() % 1_000_000)")
            idx.insert(k)
            model.insert(k)
            if i % 500 == 0 { #expect(idx.structuralProblem() == nil) }
        }
        #expect(idx.structuralProblem() == nil)
        #expect(idx.keys(in: .all, after: nil, reverse: false, max: .max) == model.sorted())
        // Appending keeps the last leaf full even after the random inserts.
        let before = idx.leafOccupancy().leaves
        for i in 0..<640 { idx.insert(Bytes(String(format: "z%08d", i))) }
        #expect(idx.leafOccupancy().leaves - before <= 11)
        #expect(idx.structuralProblem() == nil)
    }
}

/// An index value for the tests: a chain that holds the key, and a number to tell values apart.
struct Tagged: OrderedIndexValue {
    let chain: KeyChain
    let tag: Int
    init(_ key: Bytes, _ tag: Int) { (chain, self.tag) = (KeyChain.make(key: key), tag) }
    var indexKey: ChainKey { chain.indexKey }
}
