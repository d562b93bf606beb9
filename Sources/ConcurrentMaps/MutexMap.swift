import IsoKVSync
/// The baseline: one ``Locked`` mutex around a `Dictionary`.
///
/// Every operation, reads included, takes the one lock, so threads serialize on it. It is the reference that the
/// benchmarks divide by, and the right choice when a map is small, rarely contended, or needs `count` in O(1).
///
/// ```swift
/// let m = MutexMap<Int, String>()
/// m.store(1, "one")
/// m.load(1)   // "one"
/// ```
public final class MutexMap<Key: Hashable & Sendable, Value: Sendable>: ConcurrentMap {
    /// All entries; only touched with the lock held.
    @usableFromInline let storage = Locked<[Key: Value]>([:])

    public init() {}

    @inlinable public func load(_ key: Key) -> Value? { storage.withLock { $0[key] } }

    @inlinable public func store(_ key: Key, _ value: Value) { storage.withLock { $0[key] = value } }

    @inlinable public func loadOrStore(_ key: Key, _ value: Value) -> (actual: Value, loaded: Bool) {
        storage.withLock { $0.loadOrStoreLocked(key, value) }
    }

    @inlinable public func loadAndDelete(_ key: Key) -> Value? { storage.withLock { $0.removeValue(forKey: key) } }

    @inlinable public func swap(_ key: Key, _ value: Value) -> Value? {
        storage.withLock { $0.updateValue(value, forKey: key) }
    }

    @inlinable public func compareAndSwap(_ key: Key, where matches: (Value) -> Bool, new: Value) -> Bool {
        storage.withLock { $0.compareAndSwapLocked(key, where: matches, new: new) }
    }

    @inlinable public func compareAndDelete(_ key: Key, where matches: (Value) -> Bool) -> Bool {
        storage.withLock { $0.compareAndDeleteLocked(key, where: matches) }
    }

    /// Iterates over a copy taken under the lock, so `body` may call the map.
    public func forEach(_ body: (Key, Value) throws -> Bool) rethrows {
        let copy = storage.withLock { $0 }
        for (k, v) in copy where try !body(k, v) { return }
    }

    @inlinable public func clear() { storage.withLock { $0.removeAll() } }

    @inlinable public var count: Int { storage.withLock { $0.count } }
}

/// The dictionary operations every lock-based map performs with its lock held.
extension Dictionary {
    @inlinable
    mutating func loadOrStoreLocked(_ key: Key, _ value: Value) -> (actual: Value, loaded: Bool) {
        if let existing = self[key] { return (existing, true) }
        self[key] = value
        return (value, false)
    }

    @inlinable
    mutating func compareAndSwapLocked(_ key: Key, where matches: (Value) -> Bool, new: Value) -> Bool {
        guard let current = self[key], matches(current) else { return false }
        self[key] = new
        return true
    }

    @inlinable
    mutating func compareAndDeleteLocked(_ key: Key, where matches: (Value) -> Bool) -> Bool {
        guard let current = self[key], matches(current) else { return false }
        self[key] = nil
        return true
    }
}
