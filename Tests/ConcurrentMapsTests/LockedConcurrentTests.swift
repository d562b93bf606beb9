import Foundation
import IsoKVSync
import Synchronization
import Testing

/// `Locked` (and `RawLock`, which shares its wait) under contention on threads of their own: a waiter spins, then
/// parks; either way it gets the lock only after the holder has left, and every critical section runs alone.
@Suite struct LockedConcurrentTests {
    #if TSAN
        /// Under ThreadSanitizer every instrumented critical section and wait is tens of times slower, and with
        /// more threads than cores a spinning waiter burns the time slice its preempted holder needs (500 each
        /// took 55 s on a slower machine, while the rest of the suite ran on the one core left).
        static let perThread = 200
    #else
        static let perThread = 5_000
    #endif

    /// Shared state with a flag that says whether some thread is inside.
    struct Guarded {
        var inside = false
        var count = 0
        var overlaps = 0

        /// One critical section: notes an overlap, then a few hundred nanoseconds of work that adds one to
        /// `count`, so that waiters often find the lock held, spin, and now and then park.
        mutating func visit() {
            if inside { overlaps += 1 }
            inside = true
            var x = count
            for k in 0..<64 { x = x &+ k }
            count = x &- (63 * 64 / 2) + 1
            inside = false
        }
    }

    @Test func contendedCriticalSectionsRunOneAtATime() async {
        let lock = Locked(Guarded())
        let threads = 4
        let perThread = Self.perThread
        await onThreads(threads) { _ in
            for _ in 0..<perThread {
                lock.withLock { $0.visit() }
            }
        }
        let final = lock.withLock { $0 }
        #expect(final.overlaps == 0)
        #expect(final.count == threads * perThread)
    }

    /// A holder that stays far longer than the spin budget: the waiter gives up spinning and parks, and still
    /// enters only after the holder has left.
    @Test func aWaiterThatOutlastsItsSpinParksAndEntersAfterTheHolder() async {
        let lock = Locked([String]())
        let holderInside = Atomic<Bool>(false)
        await onThreads(2) { i in
            if i == 0 {
                lock.withLock { log in
                    holderInside.store(true, ordering: .sequentiallyConsistent)
                    log.append("holder in")
                    Thread.sleep(forTimeInterval: 0.2)  // ≫ RawLock.spinBudget iterations
                    log.append("holder out")
                }
            } else {
                while !holderInside.load(ordering: .sequentiallyConsistent) { Thread.sleep(forTimeInterval: 0.001) }
                lock.withLock { log in log.append("waiter in") }
            }
        }
        #expect(lock.withLock { $0 } == ["holder in", "holder out", "waiter in"])
    }

    /// The same two properties for a bare `RawLock`.
    @Test func rawLockWaitersEnterOneAtATime() async {
        final class Box: @unchecked Sendable {
            let lock = RawLock()
            var guarded = Guarded()
            deinit { lock.destroy() }
        }
        let box = Box()
        await onThreads(3) { _ in
            for _ in 0..<Self.perThread {
                box.lock.withLock { box.guarded.visit() }
            }
        }
        box.lock.withLock {
            #expect(box.guarded.overlaps == 0)
            #expect(box.guarded.count == 3 * Self.perThread)
        }
    }
}
