import Testing
@testable import ConcurrentMaps

/// The sync.Map state machine, step by step: new keys go to `dirty` and amend the view; misses promote `dirty`;
/// the first new key after a promotion rebuilds `dirty`, expunging deleted entries; a store to an expunged key
/// un-expunges it into `dirty`; promotion drops the entries that stayed expunged.
@Suite struct ReadMostlyStateMachineTests {
    typealias S = ReadMostlyMap<Int, Int>.DebugState

    @Test func promotionAndExpunge() {
        let m = ReadMostlyMap<Int, Int>()
        #expect(m.debugState() == S(readCount: 0, amended: false, dirtyCount: nil, expungedCount: 0, misses: 0))

        // New keys: dirty only, view amended.
        for k in 0..<4 { m.store(k, k * 10) }
        #expect(m.debugState() == S(readCount: 0, amended: true, dirtyCount: 4, expungedCount: 0, misses: 0))

        // Loads of dirty-only keys miss; the 4th miss (misses == dirty.count) promotes.
        for k in 0..<3 { #expect(m.load(k) == k * 10) }
        #expect(m.debugState().misses == 3)
        #expect(m.load(3) == 30)
        #expect(m.debugState() == S(readCount: 4, amended: false, dirtyCount: nil, expungedCount: 0, misses: 0))

        // Hits in the view take no lock and count no miss; updates of keys in the view stay out of dirty.
        #expect(m.load(2) == 20)
        m.store(2, 21)
        #expect(m.debugState() == S(readCount: 4, amended: false, dirtyCount: nil, expungedCount: 0, misses: 0))

        // Delete key 1: its entry stays in the view with a nil word.
        m.delete(1)
        #expect(m.load(1) == nil)
        #expect(m.debugState() == S(readCount: 4, amended: false, dirtyCount: nil, expungedCount: 0, misses: 0))

        // A new key rebuilds dirty from the view: key 1 (nil) is expunged and not copied.
        m.store(100, 1000)
        #expect(m.debugState() == S(readCount: 4, amended: true, dirtyCount: 4, expungedCount: 1, misses: 0))
        #expect(m.load(1) == nil)  // found (expunged) in the view: no miss
        #expect(m.debugState().misses == 0)

        // Storing to the expunged key un-expunges it into dirty.
        m.store(1, 11)
        #expect(m.debugState() == S(readCount: 4, amended: true, dirtyCount: 5, expungedCount: 0, misses: 0))
        #expect(m.load(1) == 11)

        // Expunge key 3 in a fresh generation and check that promotion drops it.
        for _ in 0..<5 { _ = m.load(100) }  // promote (5 misses ≥ 5 dirty)
        #expect(m.debugState() == S(readCount: 5, amended: false, dirtyCount: nil, expungedCount: 0, misses: 0))
        m.delete(3)
        m.store(200, 2000)  // rebuild dirty: 3 expunged
        #expect(m.debugState() == S(readCount: 5, amended: true, dirtyCount: 5, expungedCount: 1, misses: 0))
        for _ in 0..<5 { _ = m.load(200) }  // promote: entry of 3 dropped
        #expect(m.debugState() == S(readCount: 5, amended: false, dirtyCount: nil, expungedCount: 0, misses: 0))
        #expect(m.load(3) == nil)
        #expect(
            Dictionary(uniqueKeysWithValues: m.entries().map { ($0.key, $0.value) })
                == [0: 0, 1: 11, 2: 21, 100: 1000, 200: 2000])
    }

    @Test func forEachPromotesDirty() {
        let m = ReadMostlyMap<Int, Int>()
        for k in 0..<10 { m.store(k, k) }
        #expect(m.debugState().amended)
        #expect(m.count == 10)
        #expect(m.debugState() == S(readCount: 10, amended: false, dirtyCount: nil, expungedCount: 0, misses: 0))
    }

    @Test func deleteOfDirtyOnlyKeyRemovesIt() {
        let m = ReadMostlyMap<Int, Int>()
        for k in 1...4 { m.store(k, k) }
        #expect(m.loadAndDelete(2) == 2)  // dirty-only: removed from dirty, entry retired, one miss
        #expect(m.debugState() == S(readCount: 0, amended: true, dirtyCount: 3, expungedCount: 0, misses: 1))
        #expect(m.load(2) == nil)  // second miss
        #expect(m.loadAndDelete(3) == 3)  // third miss reaches dirty.count (2): promotion
        #expect(m.debugState() == S(readCount: 2, amended: false, dirtyCount: nil, expungedCount: 0, misses: 0))
        #expect(m.load(2) == nil && m.load(3) == nil && m.load(4) == 4)
    }

    @Test func retiredMemoryIsReclaimed() {
        let m = ReadMostlyMap<Int, Int>()
        for k in 0..<100 { m.store(k, k) }
        _ = m.count  // promote
        for round in 0..<50 { for k in 0..<100 { m.store(k, k + round) } }
        // With no reader inside, everything retired can be freed after two epoch advances.
        #expect(m.collectGarbage() == 0)
        #expect(m.load(7) == 7 + 49)
    }
}
