@testable import IsoKV
import Testing

/// The SSI state's id-keyed tables (SSI/TxidMap.swift), checked against `Dictionary` and `Set` under random
/// inserts, replacements and removals — with keys drawn from small ranges so that probe runs are long and wrap
/// around the table's end, which is where a wrong backward-shift deletion loses or duplicates keys.
@Suite("Transaction-id maps")
struct TxidMapTests {
    /// A small deterministic generator (SplitMix64), so that a failure reproduces.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    func expectSame(_ map: TxidMap<Int>, _ model: [UInt64: Int], keyRange: ClosedRange<UInt64>) {
        #expect(map.count == model.count)
        #expect(map.isEmpty == model.isEmpty)
        for k in keyRange { #expect(map[k] == model[k], "key \(k)") }
        var seen: [UInt64: Int] = [:]
        for (k, v) in map {
            #expect(seen[k] == nil, "key \(k) iterated twice")
            seen[k] = v
        }
        #expect(seen == model)
    }

    @Test(arguments: [UInt64(16), 64, 1_000])
    func behavesLikeADictionary(keySpace: UInt64) {
        var rng = Generator(state: keySpace)
        var map = TxidMap<Int>()
        var model: [UInt64: Int] = [:]
        for step in 0..<20_000 {
            let key = 1 + rng.next() % keySpace
            switch rng.next() % 3 {
            case 0, 1:
                let value = Int(truncatingIfNeeded: rng.next())
                #expect(map.insert(key, value) == (model.updateValue(value, forKey: key) == nil))
            default:
                #expect(map.removeValue(forKey: key) == model.removeValue(forKey: key))
            }
            if step % 500 == 0 { expectSame(map, model, keyRange: 1...keySpace) }
        }
        expectSame(map, model, keyRange: 1...keySpace)
        // Emptied key by key, checking the rest after each removal.
        for key in model.keys.sorted() {
            map[key] = nil
            model[key] = nil
            if model.count % 7 == 0 { expectSame(map, model, keyRange: 1...keySpace) }
        }
        expectSame(map, model, keyRange: 1...keySpace)
    }

    /// Ids as the engine hands them out: consecutive, removed roughly in order (a sliding window of live ids).
    @Test func aSlidingWindowOfConsecutiveIds() {
        var map = TxidMap<Int>()
        var model: [UInt64: Int] = [:]
        for id in UInt64(1)...50_000 {
            map[id] = Int(id)
            model[id] = Int(id)
            if id > 300 {
                map[id - 300] = nil
                model[id - 300] = nil
            }
        }
        expectSame(map, model, keyRange: 49_000...50_001)
        #expect(map.count == 300)
    }

    @Test func copiesAreIndependent() {
        var a = TxidMap<Int>()
        for k in UInt64(1)...20 { a[k] = Int(k) }
        var b = a
        b[3] = nil
        b[21] = 21
        a[4] = 40
        #expect(a[3] == 3 && a[21] == nil && a[4] == 40 && a.count == 20)
        #expect(b[3] == nil && b[21] == 21 && b[4] == 4 && b.count == 20)
        b.removeAll()
        #expect(b.isEmpty && b[1] == nil && a[1] == 1)
    }

    @Test func setsBehaveLikeSets() {
        var rng = Generator(state: 7)
        var set: TxidSet = [5, 6]
        var model: Set<UInt64> = [5, 6]
        for _ in 0..<5_000 {
            let t = 1 + rng.next() % 40
            if rng.next() % 2 == 0 {
                #expect(set.insert(t).inserted == model.insert(t).inserted)
            } else {
                #expect(set.remove(t) == model.remove(t))
            }
            #expect(set.count == model.count)
        }
        #expect(Set(set) == model)
        for t in UInt64(1)...41 { #expect(set.contains(t) == model.contains(t)) }
        let copy = set
        for t in model { set.remove(t) }
        #expect(set.isEmpty && Set(copy) == model)
    }
}
