import Testing
import ConcurrentMaps
import IsoKVTestSupport

/// Every implementation against a plain `Dictionary` on random operation sequences (single thread, so the
/// reference is trivially correct). Small key spaces force hits, misses, deletes of present and absent keys,
/// re-stores of deleted keys and, in ReadMostlyMap, promotions and expunges.
@Suite struct DifferentialTests {
    @Test(arguments: Implementations.names, [1, 2, 3, 4, 5, 6, 7, 8])
    func randomOperations(implementation: String, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let map = Implementations.make(implementation)
        var reference: [Int: Int] = [:]
        let keySpace = [4, 16, 64, 512][Int(seed % 4)]
        for step in 0..<20_000 {
            let k = Int.random(in: 0..<keySpace, using: &rng)
            let v = Int.random(in: 0..<8, using: &rng)
            let op = Int.random(in: 0..<100, using: &rng)
            // A function, not a value: `#expect` builds its comment only when it fails, and 20 000 interpolated
            // strings per case were most of this suite's time.
            func context() -> Comment { "\(implementation) seed \(seed) step \(step) op \(op) key \(k)" }
            switch op {
            case ..<30:
                #expect(map.load(k) == reference[k], context())
            case ..<40:
                map.store(k, v); reference[k] = v
            case ..<50:
                let r = map.loadOrStore(k, v)
                if let old = reference[k] {
                    #expect(r.actual == old && r.loaded, context())
                } else {
                    #expect(r.actual == v && !r.loaded, context()); reference[k] = v
                }
            case ..<58:
                #expect(map.loadAndDelete(k) == reference.removeValue(forKey: k), context())
            case ..<62:
                map.delete(k); reference[k] = nil
            case ..<72:
                #expect(map.swap(k, v) == reference.updateValue(v, forKey: k), context())
            case ..<82:
                let old = Int.random(in: 0..<8, using: &rng)
                let expected = reference[k] == old
                #expect(map.compareAndSwap(k, old: old, new: v) == expected, context())
                if expected { reference[k] = v }
            case ..<90:
                let old = Int.random(in: 0..<8, using: &rng)
                let expected = reference[k] == old
                #expect(map.compareAndDelete(k, old: old) == expected, context())
                if expected { reference[k] = nil }
            case ..<95:
                var seen: [Int: Int] = [:]
                map.forEach { key, value in
                    #expect(seen[key] == nil, "forEach visited \(key) twice")
                    seen[key] = value
                    return true
                }
                #expect(seen == reference, context())
                #expect(map.count == reference.count, context())
            case ..<96:
                map.clear(); reference.removeAll()
            default:
                // forEach that stops early visits exactly as many entries as it asked for.
                var visits = 0
                let limit = max(1, reference.count / 2)
                map.forEach { _, _ in
                    visits += 1; return visits < limit
                }
                #expect(visits == min(limit, reference.count), context())
            }
        }
        #expect(Dictionary(uniqueKeysWithValues: map.entries().map { ($0.key, $0.value) }) == reference)
    }

    /// Values with reference-counted storage: a leak or double free of cells shows up here under ASan/TSan, and a
    /// wrong copy shows up as a wrong string.
    @Test func stringValues() {
        let map = ReadMostlyMap<String, String>()
        for i in 0..<2_000 { map.store("key-\(i % 300)", String(repeating: "v\(i)", count: 1 + i % 5)) }
        for i in 1_700..<2_000 {
            #expect(map.load("key-\(i % 300)") == String(repeating: "v\(i)", count: 1 + i % 5))
        }
        map.clear()
        #expect(map.count == 0)
        #expect(map.load("key-1") == nil)
    }
}
