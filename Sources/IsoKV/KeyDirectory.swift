import IsoKVCore
import ConcurrentMaps

/// The key directory as the engine uses it: key → ``KeyChain``.
///
/// A non-generic protocol so that ``Database`` needs no type parameter. The default is ``ChainTable`` (the engine's
/// own table of chains, whose lookups the point-read path borrows without a reference count); the benchmarks can
/// put a general map behind it instead: ``ReadMostlyDirectory`` (specialized) or ``GenericDirectory`` (any other
/// ``ConcurrentMap``, unspecialized), which take the locked read path.
package protocol KeyDirectory: Sendable {
    func load(_ key: Bytes) -> KeyChain?
    func loadOrStore(_ key: Bytes, _ chain: KeyChain) -> (actual: KeyChain, loaded: Bool)
    /// Removes `chain` if it is still the one stored for its key.
    func remove(_ chain: KeyChain)
    func forEach(_ body: (Bytes, KeyChain) -> Bool)
}

/// A ``ReadMostlyMap`` as the directory (lock-free loads that write no shared memory; the default before
/// ``ChainTable``, kept for `isokv bench engine --map read-mostly`).
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
