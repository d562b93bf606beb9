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
        let rc = pthread_mutex_lock(mutex)
        precondition(rc == 0, "pthread_mutex_lock failed: \(rc)")
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

    static func destroyMutex(_ m: UnsafeMutablePointer<pthread_mutex_t>) {
        pthread_mutex_destroy(m)
        m.deallocate()
    }
}
