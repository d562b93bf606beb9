import ConcurrentMaps
import Foundation

/// Every implementation under test, by name.
enum Implementations {
    static let names = ["MutexMap", "ReadWriteLockMap", "ShardedMap", "ReadMostlyMap", "HashTrieMap", "AdaptiveMap"]

    static func make(_ name: String) -> any ConcurrentMap<Int, Int> {
        switch name {
        case "MutexMap": return MutexMap<Int, Int>()
        case "ReadWriteLockMap": return ReadWriteLockMap<Int, Int>()
        case "ShardedMap": return ShardedMap<Int, Int>(shards: 4)
        case "ReadMostlyMap": return ReadMostlyMap<Int, Int>()
        case "HashTrieMap": return HashTrieMap<Int, Int>()
        case "AdaptiveMap":
            // A small window so that the random and stress tests make it migrate back and forth.
            var policy = AdaptiveMap<Int, Int>.Policy()
            policy.window = 512
            policy.windowsBetweenSwitches = 1
            return AdaptiveMap<Int, Int>(strategy: .readMostly, policy: policy)
        default: fatalError("unknown implementation \(name)")
        }
    }
}

/// Runs `body(threadIndex)` on `threads` OS threads at once and waits for all of them — suspended, not blocking:
/// a test that blocked its cooperative thread while its own threads ran took one of the two cores' worth of
/// cooperative threads from every other test for as long (under ThreadSanitizer, long enough for other tests to
/// pass their time limits).
func onThreads(_ threads: Int, _ body: @escaping @Sendable (Int) -> Void) async {
    let group = DispatchGroup()
    for t in 0..<threads {
        group.enter()
        let thread = Thread {
            body(t)
            group.leave()
        }
        thread.start()
    }
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        group.notify(queue: .global()) { done.resume() }
    }
}
