import Testing
import Foundation
import Synchronization
import IsoKVSync
import IsoKVTestSupport

/// Real threads hammering every implementation, with invariants that a lost, duplicated or resurrected entry
/// would break. Run under ThreadSanitizer by scripts/test.
@Suite struct ConcurrentMapStressTests {
    static let threads = 4

    /// Each thread owns a key range and mirrors it in a private dictionary, while all threads also read a shared
    /// immutable range: at the end every thread's keys match its mirror and every shared read was right.
    @Test(arguments: Implementations.names)
    func disjointOwnersAndSharedReaders(implementation: String) async {
        let map = Implementations.make(implementation)
        for k in 0..<256 { map.store(-1 - k, k) }  // shared, never written again
        let failures = Atomic<Int>(0)
        await onThreads(Self.threads) { t in
            var rng = SplitMix64(seed: UInt64(t + 1))
            var mine: [Int: Int] = [:]
            let base = (t + 1) * 1_000_000
            for _ in 0..<20_000 {
                let k = base + Int.random(in: 0..<300, using: &rng)
                let v = Int.random(in: 0..<1000, using: &rng)
                switch Int.random(in: 0..<7, using: &rng) {
                case 0: if map.load(k) != mine[k] { failures.add(1, ordering: .relaxed) }
                case 1: map.store(k, v); mine[k] = v
                case 2: if map.loadAndDelete(k) != mine.removeValue(forKey: k) { failures.add(1, ordering: .relaxed) }
                case 3: if map.swap(k, v) != mine.updateValue(v, forKey: k) { failures.add(1, ordering: .relaxed) }
                case 4:
                    let ok = mine[k] != nil
                    if map.compareAndSwap(k, where: { _ in true }, new: v) != ok { failures.add(1, ordering: .relaxed) }
                    if ok { mine[k] = v }
                case 5:
                    let s = Int.random(in: 0..<256, using: &rng)
                    if map.load(-1 - s) != s { failures.add(1, ordering: .relaxed) }
                default:
                    let r = map.loadOrStore(k, v)
                    if r.loaded != (mine[k] != nil) { failures.add(1, ordering: .relaxed) }
                    if mine[k] == nil { mine[k] = v }
                }
            }
            for k in base..<(base + 300) where map.load(k) != mine[k] { failures.add(1, ordering: .relaxed) }
        }
        #expect(failures.load(ordering: .relaxed) == 0, "\(implementation)")
    }

    /// Compare-and-swap is linearizable per key: increments by CAS loops from many threads add up exactly.
    @Test(arguments: Implementations.names)
    func compareAndSwapCounters(implementation: String) async throws {
        let map = Implementations.make(implementation)
        let keys = 8, perThread = 3_000
        for k in 0..<keys { map.store(k, 0) }
        let lost = Atomic<Int>(0)  // loads that found no value: counted, so one test fails instead of the process
        await onThreads(Self.threads) { t in
            for i in 0..<perThread {
                let k = (i + t) % keys
                while true {
                    guard let v = map.load(k) else {
                        lost.add(1, ordering: .relaxed)
                        break
                    }
                    if map.compareAndSwap(k, old: v, new: v + 1) { break }
                }
            }
        }
        #expect(lost.load(ordering: .relaxed) == 0, "\(implementation)")
        let total = try (0..<keys).reduce(0) { $0 + (try #require(map.load($1))) }
        #expect(total == Self.threads * perThread, "\(implementation)")
    }

    /// Churn on shared keys: every key is created by exactly one successful `loadOrStore` and removed by exactly
    /// one successful `loadAndDelete`, with creators and deleters racing; nothing deleted comes back.
    @Test(arguments: Implementations.names)
    func createOnceDeleteOnce(implementation: String) async {
        let map = Implementations.make(implementation)
        let keys = 6_000
        let created = Atomic<Int>(0), deleted = Atomic<Int>(0), disagreements = Atomic<Int>(0)
        await onThreads(Self.threads) { t in
            for k in 0..<keys {
                let r = map.loadOrStore(k, t)
                if !r.loaded { created.add(1, ordering: .relaxed) }
                // A load sees nil (deleted meanwhile) or a value some thread stored (maybe a later re-creation).
                if let v = map.load(k), !(0..<Self.threads).contains(v) || !(0..<Self.threads).contains(r.actual) {
                    disagreements.add(1, ordering: .relaxed)
                }
                // Delete keys created a little while ago (by anyone), racing with the other threads.
                if k >= 64, map.loadAndDelete(k - 64) != nil { deleted.add(1, ordering: .relaxed) }
            }
        }
        // Threads that arrive late re-create keys that were already deleted; those count as creations too.
        for k in 0..<keys where map.loadAndDelete(k) != nil { deleted.add(1, ordering: .relaxed) }
        #expect(created.load(ordering: .relaxed) == deleted.load(ordering: .relaxed), "\(implementation)")
        #expect(disagreements.load(ordering: .relaxed) == 0, "\(implementation)")
        #expect(map.count == 0, "\(implementation)")
    }

    /// forEach, count and clear running against writers: no crash, no key visited twice, and after the writers
    /// stop a final clear leaves the map empty.
    @Test(arguments: Implementations.names)
    func rangeAndClearAgainstWriters(implementation: String) async {
        let map = Implementations.make(implementation)
        let duplicates = Atomic<Int>(0)
        await onThreads(Self.threads) { t in
            var rng = SplitMix64(seed: UInt64(100 + t))
            for i in 0..<4_000 {
                let k = Int.random(in: 0..<512, using: &rng)
                if t == 0 && i % 200 == 0 {
                    var seen = Set<Int>()
                    map.forEach { key, _ in
                        if !seen.insert(key).inserted { duplicates.add(1, ordering: .relaxed) }
                        return true
                    }
                    _ = map.count
                } else if t == 1 && i % 500 == 0 {
                    map.clear()
                } else if i % 3 == 0 {
                    map.delete(k)
                } else {
                    map.store(k, i)
                }
            }
        }
        #expect(duplicates.load(ordering: .relaxed) == 0, "\(implementation)")
        map.clear()
        #expect(map.count == 0)
        for k in 0..<512 { #expect(map.load(k) == nil) }
    }
}
