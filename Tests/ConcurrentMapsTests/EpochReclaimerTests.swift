@testable import ConcurrentMaps
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

    #if DEBUG
        /// A retire whose thread falls behind while other retires of its stripe move on: between the start of the
        /// retire and its stripe's lock, the epoch advances three times and the stripe takes an item at the new
        /// epoch (the hook runs on the same thread, so on the same stripe). When the epoch was read before the
        /// lock, the late retire tagged the stripe's list for `e % 3` with its stale epoch: the debug build's
        /// assertion stopped the process (it did once in a full test run), and a release build would have freed the
        /// newer item two epochs early. Here every item must survive until the epoch is two past its retirement.
        @Test func aRetireThatFallsBehindItsStripeNeverRetagsNewerGarbage() {
            final class Log: Sendable {
                let retiredAt = Mutex<[UInt: UInt]>([:])  // address → epoch when retired
                let early = Atomic<Int>(0)
                let freed = Atomic<Int>(0)
            }
            let log = Log()
            let reclaimerBox = Mutex<EpochReclaimer?>(nil)
            let reclaimer = EpochReclaimer(
                batch: 1_000,
                deleters: [
                    { pointer in
                        let epoch = reclaimerBox.withLock { $0!.currentEpoch }
                        let tag = log.retiredAt.withLock { $0.removeValue(forKey: UInt(bitPattern: pointer)) }
                        if let tag, epoch < tag + 2 { log.early.add(1, ordering: .relaxed) }
                        log.freed.add(1, ordering: .relaxed)
                        pointer.deallocate()
                    }
                ])
            reclaimerBox.withLock { $0 = reclaimer }
            @Sendable func retire() {
                let p = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)
                // The item is unlinked now: tagging it with any later epoch is safe.
                let epoch = reclaimer.currentEpoch
                log.retiredAt.withLock { $0[UInt(bitPattern: p)] = epoch }
                reclaimer.retire(p, kind: 0)
            }
            let fired = Atomic<Bool>(false)
            reclaimer.beforeRetireLock.withLock {
                $0 = {
                    guard !fired.exchange(true, ordering: .relaxed) else { return }
                    for _ in 0..<3 { #expect(reclaimer.tryAdvance()) }
                    retire()  // tagged with the epoch three past the one the late retire started in
                }
            }
            for _ in 0..<3 { retire() }  // the first one falls behind; the others follow
            reclaimer.beforeRetireLock.withLock { $0 = nil }
            // Move the epoch one step at a time and free what may go after each step.
            for _ in 0..<6 {
                reclaimer.tryAdvance()
                _ = reclaimer.collect()
            }
            #expect(log.freed.load(ordering: .relaxed) == 4)
            #expect(log.early.load(ordering: .relaxed) == 0)
        }
    #endif

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
