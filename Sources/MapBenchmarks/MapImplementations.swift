import ConcurrentMaps

/// One map implementation the benchmark can run: a name and a runner specialized for its concrete type.
///
/// ```swift
/// let m = MapImplementation.all.first { $0.name == "MutexMap" }!
/// let r = m.run(.loadMostlyHits, 2, .timed(warmup: .milliseconds(200), measure: .seconds(1)))
/// ```
public struct MapImplementation: Sendable {
    public let name: String
    /// Runs one workload on a fresh map; dispatches once into ``measure(_:name:workload:threads:limit:)``
    /// specialized for the concrete type.
    public let run: @Sendable (MapWorkload, Int, BenchLimit) -> Measurement

    /// An implementation backed by the concrete map type `M`.
    public static func of<M: ConcurrentMap>(_ name: String, _ type: M.Type) -> MapImplementation
    where M.Key == Int, M.Value == Int {
        MapImplementation(name: name) { w, threads, limit in
            measure(M.self, name: name, workload: w, threads: threads, limit: limit)
        }
    }

    /// The baseline every ratio divides by.
    public static let baselineName = "MutexMap"

    /// Every implementation, in table order. **Add a map here with one line.**
    public static let all: [MapImplementation] = [
        .of("MutexMap", MutexMap<Int, Int>.self),
        .of("ReadMostlyMap", ReadMostlyMap<Int, Int>.self),
        .of("ReadWriteLockMap", ReadWriteLockMap<Int, Int>.self),
        .of("ShardedMap", ShardedMap<Int, Int>.self),
        .of("HashTrieMap", HashTrieMap<Int, Int>.self),
        .of("AdaptiveMap", AdaptiveMap<Int, Int>.self)
    ]
}
