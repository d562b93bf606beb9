import Testing
import Foundation
import Synchronization
import ConcurrentMaps
import IsoKVTestSupport

/// "Concurrent" in the name: the migration test runs writers on OS threads across a switch, so scripts/test runs
/// this suite under ThreadSanitizer (it selects suites by `Concurrent|Stress`).
@Suite struct AdaptiveMapConcurrentTests {
    static func smallWindow() -> AdaptiveMap<Int, Int>.Policy {
        var p = AdaptiveMap<Int, Int>.Policy()
        p.window = 4_096
        p.windowsBetweenSwitches = 1
        return p
    }

    /// The policy, deterministically on one thread: churn moves the map to the churn strategy, a read-only phase
    /// brings it back, and no entry is lost on the way.
    @Test(arguments: [AdaptiveMap<Int, Int>.Strategy.hashTrie, .sharded])
    func switchesOnChurnAndBack(churnStrategy: AdaptiveMap<Int, Int>.Strategy) {
        var policy = Self.smallWindow()
        policy.churnStrategy = churnStrategy
        let m = AdaptiveMap<Int, Int>(strategy: .readMostly, policy: policy)
        #expect(m.strategy == .readMostly)
        for k in 0..<50_000 { m.store(k, k) }  // 100% churn
        #expect(m.strategy == churnStrategy)
        let afterChurn = m.switchCount
        #expect(afterChurn >= 1)
        for i in 0..<200_000 { #expect(m.load(i % 50_000) == i % 50_000) }  // 100% reads of existing keys
        #expect(m.strategy == .readMostly)
        #expect(m.switchCount == afterChurn + 1)
        #expect(m.count == 50_000)
        for k in stride(from: 0, to: 50_000, by: 997) { #expect(m.load(k) == k) }
    }

    /// A mixed workload below both thresholds stays where it is.
    @Test func updatesOfExistingKeysDoNotSwitch() {
        let m = AdaptiveMap<Int, Int>(strategy: .readMostly, policy: Self.smallWindow())
        // 50 creations in the first 4096-operation window are 1.2% churn, under the 2% threshold.
        for k in 0..<50 { m.store(k, 0) }
        let before = m.switchCount
        for i in 0..<100_000 { m.store(i % 50, i) }  // updates, not churn
        #expect(m.strategy == .readMostly)
        #expect(m.switchCount == before)
    }

    /// Forced migrations racing with writers: every thread owns keys and checks that its last write is what it
    /// reads back, through migrations in both directions.
    @Test func concurrentMigrationsLoseNothing() async {
        var policy = AdaptiveMap<Int, Int>.Policy()
        policy.adaptive = false
        let m = AdaptiveMap<Int, Int>(strategy: .readMostly, policy: policy)
        let failures = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        let writers = 3
        await onThreads(writers + 1) { t in
            if t == writers {
                var i = 0
                let all = AdaptiveMap<Int, Int>.Strategy.allCases
                while done.load(ordering: .acquiring) < writers {
                    m.switchStrategy(to: all[i % all.count])
                    i += 1
                }
                return
            }
            var mine: [Int: Int] = [:]
            var rng = SplitMix64(seed: UInt64(t + 7))
            for step in 0..<15_000 {
                let k = t * 10_000 + Int.random(in: 0..<200, using: &rng)
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    if m.loadAndDelete(k) != mine.removeValue(forKey: k) { failures.add(1, ordering: .relaxed) }
                } else {
                    m.store(k, step); mine[k] = step
                }
                if m.load(k) != mine[k] { failures.add(1, ordering: .relaxed) }
            }
            for (k, v) in mine where m.load(k) != v { failures.add(1, ordering: .relaxed) }
            done.add(1, ordering: .releasing)
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(m.switchCount > 0)
    }
}
