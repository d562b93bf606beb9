import ConcurrentMaps
import Synchronization
import Testing

/// The reclaimer on one thread, with a deleter that counts: nothing retired is freed while a reader that could hold
/// it is inside, garbage past its grace period is freed a few items per retire (not a whole batch at once), the
/// ready list is bounded, and `collect()` frees everything that is free to go.
@Suite struct EpochReclaimerTests {
    /// Counts the deleter's calls and frees the memory.
    final class Freed: Sendable {
        let count = Atomic<Int>(0)
    }

    static func make(batch: Int) -> (EpochReclaimer, Freed) {
        let freed = Freed()
        let reclaimer = EpochReclaimer(
            batch: batch,
            deleters: [
                { pointer in
                    pointer.deallocate()
                    freed.count.add(1, ordering: .relaxed)
                }
            ])
        return (reclaimer, freed)
    }

    static func retireOne(_ reclaimer: EpochReclaimer) {
        reclaimer.retire(UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16), kind: 0)
    }

    @Test func freesAFewItemsPerRetireNotAWholeBatch() {
        let (reclaimer, freed) = Self.make(batch: 8)
        var before = 0
        var largestStep = 0
        for _ in 0..<1_000 {
            Self.retireOne(reclaimer)
            let now = freed.count.load(ordering: .relaxed)
            largestStep = max(largestStep, now - before)
            before = now
        }
        // Freeing whole lists freed 8 (a batch) in one retire; now at most two go per retire.
        #expect(largestStep <= 2)
        // It keeps up: what is not freed yet is at most three batches waiting plus the ready list.
        #expect(freed.count.load(ordering: .relaxed) >= 1_000 - 3 * 8 - 4 * 8)
        #expect(reclaimer.pendingCount == 1_000 - freed.count.load(ordering: .relaxed))
        _ = reclaimer.collect()
        #expect(reclaimer.pendingCount == 0)
        #expect(freed.count.load(ordering: .relaxed) == 1_000)
    }

    @Test func nothingIsFreedWhileAReaderIsInsideThenTheBacklogGoesAtOnce() {
        let (reclaimer, freed) = Self.make(batch: 8)
        let reader = reclaimer.enter()
        for _ in 0..<200 { Self.retireOne(reclaimer) }
        // The reader may hold any of them: the epoch can move once, not twice.
        #expect(freed.count.load(ordering: .relaxed) == 0)
        #expect(reclaimer.collect() == 200)
        #expect(freed.count.load(ordering: .relaxed) == 0)
        reclaimer.exit(reader)
        // The next retires advance the epoch; the backlog (200 > 4 × batch ready) is freed in one go rather than
        // kept for later.
        for _ in 0..<3 { Self.retireOne(reclaimer) }
        #expect(freed.count.load(ordering: .relaxed) >= 200)
        #expect(reclaimer.pendingCount <= 3 + 4 * 8)
        _ = reclaimer.collect()
        #expect(freed.count.load(ordering: .relaxed) == 203)
    }
}
