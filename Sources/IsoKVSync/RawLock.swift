import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A bare adaptive mutex for memory the caller allocates itself (the nodes of ``HashTrieMap``).
///
/// Unlike ``Locked`` it protects nothing by construction: the owner documents what it guards and must call
/// ``destroy()`` exactly once. Prefer ``Locked`` everywhere else.
public struct RawLock: @unchecked Sendable {
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// Allocates and initialises the mutex.
    public init() { mutex = RawLock.makeMutex() }

    /// Re-wraps a mutex created by ``init()`` from its address (for locks stored in raw node memory).
    @inlinable public init(address: UInt) {
        mutex = UnsafeMutablePointer(bitPattern: address).unsafelyUnwrapped
    }

    /// The mutex's address, to store in raw memory and re-wrap with `init(address:)`.
    @inlinable public var address: UInt { UInt(bitPattern: mutex) }

    /// Releases the mutex. The lock must be unlocked and never used again.
    public func destroy() { RawLock.destroyMutex(mutex) }

    @inlinable @inline(__always) public func lock() {
        RawLock.lock(mutex)
    }

    @inlinable @inline(__always) public func unlock() {
        let rc = pthread_mutex_unlock(mutex)
        precondition(rc == 0, "pthread_mutex_unlock failed: \(rc)")
    }

    @inlinable @inline(__always) public func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Each mutex gets a cache line of its own, so that neighbouring locks (the shards of ``ShardedMap``) do not
    /// share a line.
    static let lineSize = 64

    static func makeMutex() -> UnsafeMutablePointer<pthread_mutex_t> {
        precondition(MemoryLayout<pthread_mutex_t>.size <= lineSize)
        let m = UnsafeMutableRawPointer.allocate(byteCount: lineSize, alignment: lineSize)
            .bindMemory(to: pthread_mutex_t.self, capacity: 1)
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        #if canImport(Glibc)
            // Spin a little before parking: critical sections in IsoKV are a few hundred nanoseconds at most.
            pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        #endif
        let rc = pthread_mutex_init(m, &attr)
        pthread_mutexattr_destroy(&attr)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
        return m
    }

    /// Takes `m`: one `trylock`, and if the mutex is held, ``lockContended(_:)`` (spin, then park). For mutexes
    /// kept in memory of one's own, as the engine's chain-lock stripes are; pair it with `pthread_mutex_unlock`.
    ///
    /// ```swift
    /// RawLock.lock(mutex)
    /// defer { pthread_mutex_unlock(mutex) }
    /// ```
    @inlinable @inline(__always)
    public static func lock(_ m: UnsafeMutablePointer<pthread_mutex_t>) {
        if pthread_mutex_trylock(m) != 0 { lockContended(m) }
    }

    /// The wait for a held mutex: spin for up to about ``spinBudget`` iterations (a `trylock` after each round of
    /// an exponentially growing busy wait), then park in `pthread_mutex_lock`.
    ///
    /// Why not leave it to glibc: its adaptive mutex spins about a hundred iterations (its default
    /// `glibc.pthread.mutex_spin_count`) and then sleeps in the kernel. A critical section of a microsecond — a
    /// serializable commit under the commit lock — outlasts that, and on a virtual machine the sleeper's idle
    /// CPU is halted, so the wake-up (a futex wake, an inter-processor interrupt through the hypervisor, the
    /// scheduler) costs far more than the critical section: a profile of scheduler switches under ycsb-a at
    /// `.serializable` put most of them in the commit lock's `futex_wait` (Sources/IsoKV/DESIGN.md, "Performance
    /// notes"). The budget (a few microseconds on the machines measured) bounds what a waiter burns when the
    /// holder was preempted instead.
    @usableFromInline @inline(never)
    static func lockContended(_ m: UnsafeMutablePointer<pthread_mutex_t>) {
        var round = 16
        var spent = 0
        while spent < spinBudget {
            spin(round)
            spent += round
            if pthread_mutex_trylock(m) == 0 { return }
            if round < 1024 { round &*= 2 }
        }
        let rc = pthread_mutex_lock(m)
        precondition(rc == 0, "pthread_mutex_lock failed: \(rc)")
    }

    #if TSAN
        /// Busy-wait iterations before a contended lock parks. Under ThreadSanitizer (`-DTSAN`, as `scripts/test`
        /// builds it) every load of the busy wait and every `trylock` is instrumented, tens of times slower, and a
        /// full budget per contended acquisition made the concurrency suites run minutes longer.
        public static let spinBudget = 512
    #else
        /// Busy-wait iterations before a contended lock parks (each a relaxed load of a line nobody writes).
        public static let spinBudget = 32_768
    #endif

    /// Read in the busy wait: an atomic load the optimizer keeps, on a line no one writes.
    static let spinWord = Atomic<Int>(0)

    @inline(never)
    static func spin(_ iterations: Int) {
        for _ in 0..<iterations { _ = spinWord.load(ordering: .relaxed) }
    }

    static func destroyMutex(_ m: UnsafeMutablePointer<pthread_mutex_t>) {
        pthread_mutex_destroy(m)
        m.deallocate()
    }
}
