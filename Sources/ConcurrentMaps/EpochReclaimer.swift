import IsoKVSync
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Synchronization

/// Epoch-based reclamation over striped reader counters: the memory-safety layer under the lock-free maps.
///
/// A lock-free reader may hold a pointer to a node, entry or value cell that a writer has just unlinked. The writer
/// therefore does not free what it unlinks; it *retires* it, and the reclaimer frees it only after every reader that
/// could have seen it has left its critical section. Readers pay two atomic increments on a counter that belongs to
/// their own thread's stripe (a cache line no other running thread writes, as long as there are no more threads than
/// stripes) and never touch memory that other readers write: no shared reference count, no shared lock.
///
/// ```swift
/// let reclaimer = EpochReclaimer(deleters: [{ $0.deallocate() }])   // kind 0
/// let guard = reclaimer.enter()           // start of a read-side critical section
/// defer { reclaimer.exit(guard) }
/// … read atomically published pointers …
/// // a writer, after unlinking `p` with a sequentially consistent store:
/// reclaimer.retire(p, kind: 0)
/// ```
///
/// The algorithm (DESIGN.md has the proof sketch):
/// - A global epoch `E`. Reader entry: load `E` = e, increment `counter[stripe][e & 1]`, load `E` again; if it
///   changed, undo and retry. A reader thus *validated* at epoch e is counted at parity e & 1 until it exits.
/// - `retire(p)` tags p with the current epoch e (loaded after the unlink) in the calling thread's stripe.
/// - The epoch advances from e to e + 1 only when no reader validated at e - 1 remains: the sum of
///   `counter[*][(e - 1) & 1]` is zero. At epoch e only readers validated at e - 1 or e can be active.
/// - Garbage tagged e is freed once `E ≥ e + 2`: every reader that validated at an epoch ≤ e (the only ones that
///   can have loaded a pointer unlinked at e) has exited by then.
/// Every operation on `E`, on the counters, on the unlinking stores and on the readers' pointer loads is
/// sequentially consistent, so the argument holds in the single total order of those operations.
///
/// Critical sections nest (the counters count). A reader that stays inside a critical section for a long time
/// (a long ``ConcurrentMap/forEach(_:)``) delays reclamation for everyone; it never blocks a writer.
public final class EpochReclaimer: @unchecked Sendable {
    // @unchecked Sendable: `epoch` and the counters are atomics; `limbo` is guarded by its own locks; `stripes`
    // and `mask` are immutable after init.

    /// A reader's proof of presence; pass it back to ``exit(_:)``.
    public struct Guard {
        @usableFromInline let counter: UnsafeMutablePointer<Atomic<Int>>
        @usableFromInline init(counter: UnsafeMutablePointer<Atomic<Int>>) { self.counter = counter }
    }

    /// How to free one kind of retired object. Registered once, at init, so that retiring stores an index and
    /// no reference-counted closure (a shared reference count on every write was 15% of a write's cost).
    public typealias Deleter = @Sendable (UnsafeMutableRawPointer) -> Void

    /// Something retired, waiting for its grace period to end: a trivial value, copied with no refcounting.
    @usableFromInline
    struct Retired {
        let pointer: UnsafeMutableRawPointer
        /// Index into `deleters`.
        let kind: Int
    }

    /// Garbage retired by the threads of one stripe, in three lists by epoch residue (e % 3), and the garbage whose
    /// grace period has ended, waiting to be freed a few items at a time (``EpochReclaimer/retire(_:kind:)``).
    /// Invariant: `items[i]` holds only garbage tagged `epochs[i]`, and `epochs[i] % 3 == i` unless empty; `ready`
    /// holds only garbage no reader can hold any more, at most `readyLimit` items after each retire.
    @usableFromInline
    struct Limbo {
        var epochs: (UInt, UInt, UInt) = (0, 0, 0)
        var items: ([Retired], [Retired], [Retired]) = ([], [], [])
        var ready: [Retired] = []
        /// Retired items whose grace period has not ended (yet).
        var waiting: Int { items.0.count + items.1.count + items.2.count }
        var pending: Int { waiting + ready.count }

        /// Moves every list whose epoch is at most `safe` to `ready`.
        mutating func moveReclaimableToReadyLocked(upTo safe: UInt) {
            if epochs.0 <= safe, !items.0.isEmpty { Self.take(&items.0, into: &ready) }
            if epochs.1 <= safe, !items.1.isEmpty { Self.take(&items.1, into: &ready) }
            if epochs.2 <= safe, !items.2.isEmpty { Self.take(&items.2, into: &ready) }
        }

        private static func take(_ list: inout [Retired], into out: inout [Retired]) {
            if out.isEmpty { swap(&out, &list) } else { out += list; list.removeAll(keepingCapacity: true) }
        }

        /// Adds `r` tagged `epoch`. The list for `epoch % 3` can only hold older garbage (tag ≤ epoch - 3), which the
        /// caller has already taken because its tag is ≤ epoch - 2.
        mutating func appendLocked(_ r: Retired, epoch: UInt) {
            switch epoch % 3 {
            case 0: assert(items.0.isEmpty || epochs.0 == epoch); epochs.0 = epoch; items.0.append(r)
            case 1: assert(items.1.isEmpty || epochs.1 == epoch); epochs.1 = epoch; items.1.append(r)
            default: assert(items.2.isEmpty || epochs.2 == epoch); epochs.2 = epoch; items.2.append(r)
            }
        }
    }

    /// Words per stripe: two counters padded to 128 bytes (two cache lines, against adjacent-line prefetch).
    @usableFromInline static let stripeWords = 16

    /// The global epoch. Starts at 2 so that `e - 2` never underflows. Stored only by `tryAdvance`.
    @usableFromInline let epoch = Atomic<UInt>(2)
    /// `stripes × stripeWords` counters; counter `[s][p]` is at `s * stripeWords + p` (p = epoch parity).
    /// Counts readers validated at an epoch of parity p that are still inside a critical section.
    @usableFromInline let counters: UnsafeMutablePointer<Atomic<Int>>
    /// `stripes - 1`; the number of stripes is a power of two.
    @usableFromInline let mask: Int
    /// One limbo per stripe, so that writers on different threads do not contend to retire.
    let limbo: [Locked<Limbo>]
    /// Serializes epoch advances (tryLock only: a writer never waits for another writer's scan); counts them.
    let advances = Locked<UInt64>(0)
    /// Retire this many items in a stripe before trying to advance the epoch.
    let batch: Int
    /// The most items a stripe keeps ready (grace period over, not yet freed) after a retire; past it the retire
    /// frees them all at once. `4 × batch`.
    let readyLimit: Int
    /// How to free each kind of retired object; immutable.
    let deleters: [Deleter]
    #if DEBUG
        /// Tests only: runs at the start of every ``retire(_:kind:)``, before the stripe's lock is taken, where
        /// another retire on the same stripe and epoch advances can come between (`EpochReclaimerTests`).
        let beforeRetireLock = Locked<(@Sendable () -> Void)?>(nil)
    #endif

    /// Creates a reclaimer with `stripes` reader stripes (rounded up to a power of two).
    /// - Parameters:
    ///   - stripes: at least the number of threads expected to read at once; default 4 × the CPU count, minimum 16.
    ///   - batch: how many retirements a stripe collects before it tries to advance the epoch.
    ///   - deleters: how to free each kind of object; ``retire(_:kind:)`` names a kind by its index here.
    public init(stripes: Int? = nil, batch: Int = 64, deleters: [Deleter]) {
        self.deleters = deleters
        let wanted = max(stripes ?? 4 * ProcessInfoLite.activeProcessorCount, 16)
        var n = 1
        while n < wanted { n <<= 1 }
        mask = n - 1
        self.batch = max(batch, 1)
        readyLimit = 4 * self.batch
        counters = .allocate(capacity: n * Self.stripeWords)
        for i in 0..<(n * Self.stripeWords) { (counters + i).initialize(to: Atomic(0)) }
        limbo = (0..<n).map { _ in Locked(Limbo()) }
    }

    deinit {
        // No reader can be inside: every reader is a method of an object that keeps this reclaimer alive.
        var all: [Retired] = []
        for l in limbo {
            l.withLock {
                $0.moveReclaimableToReadyLocked(upTo: .max)
                all += $0.ready
            }
        }
        free(all)
        counters.deinitialize(count: (mask + 1) * Self.stripeWords)
        counters.deallocate()
    }

    /// Enters a read-side critical section. Every pointer loaded inside it stays valid until ``exit(_:)``.
    @inlinable @inline(__always)
    public func enter() -> Guard {
        let base = counters + (ThreadStripe.current() & mask) &* Self.stripeWords
        while true {
            let e = epoch.load(ordering: .sequentiallyConsistent)
            let c = base + Int(e & 1)
            c.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if epoch.load(ordering: .sequentiallyConsistent) == e { return Guard(counter: c) }
            // The epoch moved between our two loads: we may be counted at the wrong parity. Undo and retry.
            c.pointee.wrappingSubtract(1, ordering: .releasing)
        }
    }

    /// Leaves the critical section entered with `guard`.
    @inlinable @inline(__always)
    public func exit(_ guard: Guard) {
        `guard`.counter.pointee.wrappingSubtract(1, ordering: .releasing)
    }

    /// Runs `body` inside a read-side critical section.
    @inlinable @inline(__always)
    public func withGuard<R>(_ body: () throws -> R) rethrows -> R {
        let g = enter()
        defer { exit(g) }
        return try body()
    }

    /// Hands `pointer` to the reclaimer, which calls `deleters[kind](pointer)` once no reader can still hold it.
    ///
    /// Call it only after `pointer` is unreachable for new readers (unlinked with a sequentially consistent store
    /// or read-modify-write), exactly once per pointer. The deleter runs later, on some writer's thread, outside
    /// every lock of the reclaimer (so it may itself retire more garbage).
    ///
    /// Garbage whose grace period has ended moves to the stripe's ready list, and each retire frees two items of
    /// it (all of it past ``readyLimit``). Freeing a whole batch at once defeated the allocator's per-thread cache:
    /// glibc's tcache keeps 7 chunks of a size, so the rest of a batch of 64 went back to the arena of the thread
    /// that allocated them, under that arena's lock — which the other thread, allocating at the same moment,
    /// then waited for in the kernel (most of the futex calls of a write-heavy engine run). Freed a few at a time,
    /// between the writer's own allocations of the same sizes, they stay in the cache.
    public func retire(_ pointer: UnsafeMutableRawPointer, kind: Int) {
        precondition(deleters.indices.contains(kind), "EpochReclaimer: unknown deleter kind \(kind)")
        let stripe = ThreadStripe.current() & mask
        #if DEBUG
            if let hook = beforeRetireLock.withLock({ $0 }) { hook() }
        #endif
        var overflow: [Retired] = []
        let (waiting, first, second) = limbo[stripe].withLock { l -> (Int, Retired?, Retired?) in
            // The epoch is read under the stripe's lock, so the tags appended to a stripe never decrease. Read
            // before the lock, it could be three advances old by the time the lock was taken (a thread descheduled
            // in between, another thread of the stripe retiring meanwhile): its list `e % 3` would then hold newer
            // garbage, which the append would retag `e` and free two epochs early. Any epoch read after the
            // pointer was unlinked is a safe tag; a later one only delays the free.
            let e = epoch.load(ordering: .sequentiallyConsistent)
            if e >= 2 { l.moveReclaimableToReadyLocked(upTo: e - 2) }
            l.appendLocked(Retired(pointer: pointer, kind: kind), epoch: e)
            let first = l.ready.popLast()
            let second = l.ready.popLast()
            if l.ready.count > readyLimit { swap(&overflow, &l.ready) }
            return (l.waiting, first, second)
        }
        if let first { deleters[first.kind](first.pointer) }
        if let second { deleters[second.kind](second.pointer) }
        if !overflow.isEmpty { free(overflow) }
        if waiting >= batch { _ = tryAdvance() }
    }

    private func free(_ items: [Retired]) {
        deleters.withUnsafeBufferPointer { d in
            for r in items { d[r.kind](r.pointer) }
        }
    }

    /// Advances the epoch if no reader of the previous epoch remains. Returns whether it advanced.
    @discardableResult
    public func tryAdvance() -> Bool {
        advances.withLockIfAvailable { count -> Bool in
            let e = epoch.load(ordering: .sequentiallyConsistent)
            let parity = Int((e &- 1) & 1)
            var active = 0
            for s in 0...mask {
                active &+= (counters + s * Self.stripeWords + parity).pointee.load(ordering: .sequentiallyConsistent)
            }
            guard active == 0 else { return false }
            epoch.store(e + 1, ordering: .sequentiallyConsistent)
            count += 1
            return true
        } ?? false
    }

    /// Tries to advance the epoch twice and frees everything whose grace period has ended, in every stripe.
    /// Returns the number of items still waiting (non-zero while readers are inside critical sections).
    @discardableResult
    public func collect() -> Int {
        tryAdvance()
        tryAdvance()
        let e = epoch.load(ordering: .sequentiallyConsistent)
        var reclaimable: [Retired] = []
        var waiting = 0
        for l in limbo {
            waiting += l.withLock { l -> Int in
                l.moveReclaimableToReadyLocked(upTo: e - 2)
                reclaimable += l.ready
                l.ready.removeAll()
                return l.pending
            }
        }
        free(reclaimable)
        return waiting
    }

    /// Items retired and not yet freed (for tests and diagnostics).
    public var pendingCount: Int { limbo.reduce(0) { n, l in n + l.withLock { $0.pending } } }

    /// The current epoch (for tests and diagnostics).
    public var currentEpoch: UInt { epoch.load(ordering: .sequentiallyConsistent) }
}

/// A small dense index per thread, assigned round-robin on a thread's first use, so that the first N threads land on
/// N distinct reader stripes.
public enum ThreadStripe {
    /// The pthread key whose per-thread value is `index + 1` (0 means "not assigned yet").
    @usableFromInline static let key: pthread_key_t = {
        var k = pthread_key_t()
        let rc = pthread_key_create(&k, nil)
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return k
    }()
    /// The next index to hand out.
    static let next = Atomic<Int>(0)

    /// This thread's index.
    @inlinable @inline(__always)
    public static func current() -> Int {
        let k = key
        if let v = pthread_getspecific(k) { return Int(bitPattern: v) &- 1 }
        return assign(k)
    }

    @usableFromInline @inline(never)
    static func assign(_ k: pthread_key_t) -> Int {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        pthread_setspecific(k, UnsafeRawPointer(bitPattern: index + 1))
        return index
    }
}

/// The processor count without Foundation.
enum ProcessInfoLite {
    static var activeProcessorCount: Int { max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1) }
}
