import Foundation
import IsoKVSync
import Synchronization
import Testing

/// `Locked` (and `RawLock`, which shares its wait) under contention on threads of their own: a waiter spins, then
/// parks; either way it gets the lock only after the holder has left, and every critical section runs alone.
@Suite struct LockedConcurrentTests {
    /// Shared state with a flag that says whether some thread is inside.
    struct Guarded {
        var inside = false
        var count = 0
        var overlaps = 0
    }

    @Test func contendedCriticalSectionsRunOneAtATime() {
        let lock = Locked(Guarded())
        let threads = 4
        let perThread = 5_000
        onThreads(threads) { _ in
            for _ in 0..<perThread {
                lock.withLock { s in
                    if s.inside { s.overlaps += 1 }
                    s.inside = true
                    // A few hundred nanoseconds of work, so that waiters often find the lock held and spin.
                    var x = s.count
                    for k in 0..<64 { x = x &+ k }
                    s.count = x &- (63 * 64 / 2) + 1
                    s.inside = false
                }
            }
        }
        let final = lock.withLock { $0 }
        #expect(final.overlaps == 0)
        #expect(final.count == threads * perThread)
    }

    /// A holder that stays far longer than the spin budget: the waiter gives up spinning and parks, and still
    /// enters only after the holder has left.
    @Test func aWaiterThatOutlastsItsSpinParksAndEntersAfterTheHolder() {
        let lock = Locked([String]())
        let holderInside = Atomic<Bool>(false)
        onThreads(2) { i in
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
    @Test func rawLockWaitersEnterOneAtATime() {
        final class Box: @unchecked Sendable {
            let lock = RawLock()
            var inside = false
            var overlaps = 0
            var count = 0
            deinit { lock.destroy() }
        }
        let box = Box()
        onThreads(3) { _ in
            for _ in 0..<5_000 {
                box.lock.withLock {
                    if box.inside { box.overlaps += 1 }
                    box.inside = true
                    // Work enough that waiters find the lock held, spin, and now and then park.
                    var x = box.count
                    for k in 0..<64 { x = x &+ k }
                    box.count = x &- (63 * 64 / 2) + 1
                    box.inside = false
                }
            }
        }
        box.lock.withLock {
            #expect(box.overlaps == 0)
            #expect(box.count == 15_000)
        }
    }
}
