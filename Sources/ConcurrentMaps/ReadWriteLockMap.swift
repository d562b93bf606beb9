#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A `Dictionary` behind a reader-writer lock (`pthread_rwlock_t`): reads share the lock, writes exclude.
///
/// Readers still write shared memory (the lock's reader count), so on many cores reads contend on one cache line;
/// it is here as the textbook rival to ``ReadMostlyMap``. glibc's default rwlock prefers readers: a steady stream of
/// readers can delay a writer.
///
/// ```swift
/// let m = ReadWriteLockMap<String, Int>()
/// m.store("a", 1)
/// m.load("a")   // 1
/// ```
public final class ReadWriteLockMap<Key: Hashable & Sendable, Value: Sendable>: ConcurrentMap, @unchecked Sendable {
    // @unchecked Sendable: `storage` is read only with `rwlock` held shared and written only with it held exclusive.

    /// The lock; heap-allocated so that its address never changes.
    @usableFromInline let rwlock: UnsafeMutablePointer<pthread_rwlock_t>
    /// All entries.
    @usableFromInline var storage: [Key: Value] = [:]

    public init() {
        rwlock = .allocate(capacity: 1)
        let rc = pthread_rwlock_init(rwlock, nil)
        precondition(rc == 0, "pthread_rwlock_init failed: \(rc)")
    }

    deinit {
        pthread_rwlock_destroy(rwlock)
        rwlock.deallocate()
    }

    @inlinable @inline(__always)
    func reading<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_rdlock(rwlock)
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }

    @inlinable @inline(__always)
    func writing<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_wrlock(rwlock)
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }

    @inlinable public func load(_ key: Key) -> Value? { reading { storage[key] } }

    @inlinable public func store(_ key: Key, _ value: Value) { writing { storage[key] = value } }

    @inlinable public func loadOrStore(_ key: Key, _ value: Value) -> (actual: Value, loaded: Bool) {
        if let existing = reading({ storage[key] }) { return (existing, true) }
        return writing { storage.loadOrStoreLocked(key, value) }
    }

    @inlinable public func loadAndDelete(_ key: Key) -> Value? { writing { storage.removeValue(forKey: key) } }

    @inlinable public func swap(_ key: Key, _ value: Value) -> Value? {
        writing { storage.updateValue(value, forKey: key) }
    }

    @inlinable public func compareAndSwap(_ key: Key, where matches: (Value) -> Bool, new: Value) -> Bool {
        writing { storage.compareAndSwapLocked(key, where: matches, new: new) }
    }

    @inlinable public func compareAndDelete(_ key: Key, where matches: (Value) -> Bool) -> Bool {
        writing { storage.compareAndDeleteLocked(key, where: matches) }
    }

    /// Iterates over a copy taken under the read lock, so `body` may call the map.
    public func forEach(_ body: (Key, Value) throws -> Bool) rethrows {
        let copy = reading { storage }
        for (k, v) in copy where try !body(k, v) { return }
    }

    @inlinable public func clear() { writing { storage.removeAll() } }

    @inlinable public var count: Int { reading { storage.count } }
}
