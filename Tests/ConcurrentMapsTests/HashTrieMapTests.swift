import Testing
@testable import ConcurrentMaps
import IsoKVTestSupport

/// A key whose hash the test controls: keys with the same `bucket` collide on the full hash, which forces the
/// trie's overflow chains; `id` tells them apart.
struct CollidingKey: Hashable, Sendable {
    let id: Int
    let bucket: Int
    func hash(into hasher: inout Hasher) { hasher.combine(bucket) }
    static func == (a: Self, b: Self) -> Bool { a.id == b.id && a.bucket == b.bucket }
}

@Suite struct HashTrieMapTests {
    /// Full-hash collisions: chains of up to 8 entries; insert, replace in the middle of a chain, delete head,
    /// middle and tail, against a reference dictionary.
    @Test(arguments: [11, 12, 13])
    func collisionChains(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let m = HashTrieMap<CollidingKey, Int>()
        var reference: [CollidingKey: Int] = [:]
        for step in 0..<20_000 {
            let k = CollidingKey(id: Int.random(in: 0..<8, using: &rng), bucket: Int.random(in: 0..<6, using: &rng))
            let v = Int.random(in: 0..<100, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: #expect(m.load(k) == reference[k], "step \(step)")
            case 1: #expect(m.swap(k, v) == reference.updateValue(v, forKey: k), "step \(step)")
            case 2: #expect(m.loadAndDelete(k) == reference.removeValue(forKey: k), "step \(step)")
            case 3:
                let r = m.loadOrStore(k, v)
                #expect(r.loaded == (reference[k] != nil), "step \(step)")
                if reference[k] == nil { reference[k] = v }
                #expect(r.actual == reference[k], "step \(step)")
            case 4:
                let old = reference[k] ?? -1
                let expected = reference[k] != nil
                #expect(m.compareAndSwap(k, old: old, new: v) == expected, "step \(step)")
                if expected { reference[k] = v }
            default:
                let old = reference[k] ?? -1
                let expected = reference[k] != nil
                #expect(m.compareAndDelete(k, old: old) == expected, "step \(step)")
                if expected { reference[k] = nil }
            }
        }
        #expect(Dictionary(uniqueKeysWithValues: m.entries().map { ($0.key, $0.value) }) == reference)
    }

    /// Inserting many keys builds a deep trie; deleting them all prunes it back to an empty root.
    @Test func pruneToEmptyRoot() {
        let m = HashTrieMap<Int, Int>()
        for k in 0..<50_000 { m.store(k, k) }
        #expect(m.count == 50_000)
        for k in 0..<50_000 { #expect(m.loadAndDelete(k) == k) }
        #expect(m.count == 0)
        let root = _HTNode(bits: m.root.load(ordering: .sequentiallyConsistent))
        #expect(root.isEmpty)
        #expect(m.collectGarbage() == 0)
    }
}
