import IsoKVCore
import ConcurrentMaps

/// The key directory as the engine uses it: key → ``KeyChain``.
///
/// A non-generic protocol so that ``Database`` needs no type parameter, implemented by one concrete class per map
/// so that the map's `@inlinable` fast paths are specialized and inlined (through `any ConcurrentMap` they would run
/// as unspecialized generic code, with value-witness calls for every copy). The default is
/// ``ReadMostlyDirectory``; ``GenericDirectory`` wraps any other ``ConcurrentMap`` (unspecialized, for comparison).
package protocol KeyDirectory: Sendable {
    func load(_ key: Bytes) -> KeyChain?
    func loadOrStore(_ key: Bytes, _ chain: KeyChain) -> (actual: KeyChain, loaded: Bool)
    /// Removes `chain` if it is still the one stored for its key.
    func remove(_ chain: KeyChain)
    func forEach(_ body: (Bytes, KeyChain) -> Bool)
}

/// The default directory: a ``ReadMostlyMap`` (lock-free loads that write no shared memory). Keys are written to it
/// only when a key is created or collected, so the engine's directory is read-mostly even under update-heavy loads.
package final class ReadMostlyDirectory: KeyDirectory {
    let map = ReadMostlyMap<Bytes, KeyChain>()
    package init() {}
    @inline(__always)
    package func load(_ key: Bytes) -> KeyChain? { map.load(key) }
    package func loadOrStore(_ key: Bytes, _ chain: KeyChain) -> (actual: KeyChain, loaded: Bool) {
        map.loadOrStore(key, chain)
    }
    package func remove(_ chain: KeyChain) { _ = map.compareAndDelete(chain.key) { $0 === chain } }
    package func forEach(_ body: (Bytes, KeyChain) -> Bool) { map.forEach(body) }
}

/// Any ``ConcurrentMap`` as a directory (generic, so not specialized across the module boundary).
package final class GenericDirectory<Map: ConcurrentMap>: KeyDirectory where Map.Key == Bytes, Map.Value == KeyChain {
    let map = Map()
    package init() {}
    package func load(_ key: Bytes) -> KeyChain? { map.load(key) }
    package func loadOrStore(_ key: Bytes, _ chain: KeyChain) -> (actual: KeyChain, loaded: Bool) {
        map.loadOrStore(key, chain)
    }
    package func remove(_ chain: KeyChain) { _ = map.compareAndDelete(chain.key) { $0 === chain } }
    package func forEach(_ body: (Bytes, KeyChain) -> Bool) { map.forEach(body) }
}
