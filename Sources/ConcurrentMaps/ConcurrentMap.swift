/// A hash map that many threads may use at once, with the API of Go's `sync.Map`.
///
/// Every method is atomic on its key (linearizable per key). Nothing is atomic across keys: ``forEach(_:)`` and
/// ``count`` do not observe a consistent snapshot of the whole map.
///
/// ```swift
/// let sessions = ReadMostlyMap<String, Int>()
/// sessions.store("alice", 1)
/// let (value, loaded) = sessions.loadOrStore("bob", 2)   // (2, false)
/// if sessions.compareAndSwap("alice", old: 1, new: 3) { … }
/// sessions.forEach { key, value in print(key, value); return true }
/// ```
///
/// Implementations: ``ReadMostlyMap`` (the sync.Map design), ``HashTrieMap`` (Go 1.24's), ``MutexMap``,
/// ``ReadWriteLockMap``, ``ShardedMap`` and ``AdaptiveMap``. Choose with `isokv bench maps`.
public protocol ConcurrentMap<Key, Value>: AnyObject, Sendable {
    associatedtype Key: Hashable & Sendable
    associatedtype Value: Sendable

    /// An empty map.
    init()

    /// The value stored for `key`, or nil.
    func load(_ key: Key) -> Value?

    /// Sets the value for `key`.
    func store(_ key: Key, _ value: Value)

    /// Returns the existing value for `key` if present (`loaded` true); otherwise stores and returns `value`.
    func loadOrStore(_ key: Key, _ value: Value) -> (actual: Value, loaded: Bool)

    /// Deletes the value for `key`, returning the previous value if any.
    @discardableResult
    func loadAndDelete(_ key: Key) -> Value?

    /// Sets the value for `key` and returns the previous value if any.
    @discardableResult
    func swap(_ key: Key, _ value: Value) -> Value?

    /// Replaces the value for `key` with `new` if a value is present and `matches` accepts it.
    ///
    /// `matches` may be called more than once and must be a pure function of the value. The ``Equatable`` form
    /// is ``compareAndSwap(_:old:new:)``.
    func compareAndSwap(_ key: Key, where matches: (Value) -> Bool, new: Value) -> Bool

    /// Deletes the entry for `key` if a value is present and `matches` accepts it.
    func compareAndDelete(_ key: Key, where matches: (Value) -> Bool) -> Bool

    /// Calls `body` for each key and value until it returns false.
    ///
    /// Not a consistent snapshot: each key is visited at most once, but a value may be any the key had during the
    /// call, and keys stored or deleted concurrently may or may not be visited. `body` may call the map.
    func forEach(_ body: (Key, Value) throws -> Bool) rethrows

    /// Deletes every entry. Concurrent operations are ordered either before or after the clear, per key.
    func clear()

    /// The number of entries. O(n) for the lock-free maps, and not a snapshot under concurrent writes.
    var count: Int { get }
}

extension ConcurrentMap {
    /// Deletes the value for `key`.
    @inlinable
    public func delete(_ key: Key) { _ = loadAndDelete(key) }

    /// All entries, collected by ``forEach(_:)`` (not a snapshot under concurrent writes).
    public func entries() -> [(key: Key, value: Value)] {
        var out: [(key: Key, value: Value)] = []
        forEach {
            out.append(($0, $1)); return true
        }
        return out
    }
}

extension ConcurrentMap where Value: Equatable {
    /// Replaces the value for `key` with `new` if the stored value equals `old`.
    @inlinable
    public func compareAndSwap(_ key: Key, old: Value, new: Value) -> Bool {
        compareAndSwap(key, where: { $0 == old }, new: new)
    }

    /// Deletes the entry for `key` if its value equals `old`.
    @inlinable
    public func compareAndDelete(_ key: Key, old: Value) -> Bool {
        compareAndDelete(key, where: { $0 == old })
    }
}
