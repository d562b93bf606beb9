import IsoKVSync
/// A map split into a power-of-two number of shards, each a `Dictionary` behind its own mutex.
///
/// A key's shard is chosen by its hash, so threads that touch different keys usually take different locks, each
/// on its own cache line. It is the simplest map that scales writes; reads still take a lock (uncontended, a few
/// nanoseconds, but a shared write). ``forEach(_:)`` visits shard by shard, each shard copied under its lock.
///
/// ```swift
/// let m = ShardedMap<Int, Int>(shards: 64)
/// m.store(1, 1)
/// m.load(1)   // 1
/// ```
public final class ShardedMap<Key: Hashable & Sendable, Value: Sendable>: ConcurrentMap {
    /// The shards; immutable array of locks, each owning its part of the key space.
    @usableFromInline let shards: [Locked<[Key: Value]>]
    /// `shards.count - 1`.
    @usableFromInline let mask: Int

    /// An empty map with 4 shards per CPU (at least 16).
    public convenience init() { self.init(shards: max(16, 4 * ProcessInfoLite.activeProcessorCount)) }

    /// An empty map with `shards` shards, rounded up to a power of two.
    public init(shards: Int) {
        var n = 1
        while n < max(shards, 1) { n <<= 1 }
        self.shards = (0..<n).map { _ in Locked([:]) }
        self.mask = n - 1
    }

    @inlinable @inline(__always)
    func shard(_ key: Key) -> Locked<[Key: Value]> {
        // Take the high bits of a multiplicative mix: the Dictionary inside uses the low bits of its own hash.
        let h = UInt(bitPattern: key.hashValue) &* 0x9E37_79B9_7F4A_7C15
        return shards[Int(truncatingIfNeeded: h >> 40) & mask]
    }

    @inlinable public func load(_ key: Key) -> Value? { shard(key).withLock { $0[key] } }

    @inlinable public func store(_ key: Key, _ value: Value) { shard(key).withLock { $0[key] = value } }

    @inlinable public func loadOrStore(_ key: Key, _ value: Value) -> (actual: Value, loaded: Bool) {
        shard(key).withLock { $0.loadOrStoreLocked(key, value) }
    }

    @inlinable public func loadAndDelete(_ key: Key) -> Value? { shard(key).withLock { $0.removeValue(forKey: key) } }

    @inlinable public func swap(_ key: Key, _ value: Value) -> Value? {
        shard(key).withLock { $0.updateValue(value, forKey: key) }
    }

    @inlinable public func compareAndSwap(_ key: Key, where matches: (Value) -> Bool, new: Value) -> Bool {
        shard(key).withLock { $0.compareAndSwapLocked(key, where: matches, new: new) }
    }

    @inlinable public func compareAndDelete(_ key: Key, where matches: (Value) -> Bool) -> Bool {
        shard(key).withLock { $0.compareAndDeleteLocked(key, where: matches) }
    }

    public func forEach(_ body: (Key, Value) throws -> Bool) rethrows {
        for s in shards {
            let copy = s.withLock { $0 }
            for (k, v) in copy where try !body(k, v) { return }
        }
    }

    /// Clears shard by shard: not atomic across shards.
    public func clear() { for s in shards { s.withLock { $0.removeAll() } } }

    public var count: Int { shards.reduce(0) { n, s in n + s.withLock { $0.count } } }
}
