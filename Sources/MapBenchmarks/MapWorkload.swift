/// One workload of `isokv bench maps`: the operation mix each thread runs in its hot loop.
///
/// The first eighteen reproduce the benchmarks of Go's `src/sync/map_bench_test.go` (Go 1.20+), with the same key
/// ranges, set-up and per-iteration operations; the last two are IsoKV's own. One *operation* is one iteration of
/// the workload's loop body, as in Go's ns/op (so an iteration that does a swap and a delete counts once).
///
/// Every thread starts its counter `i` at its own offset (`thread × keySpacing`, like Go's `id × b.N`) so that
/// "unique" keys never collide between threads.
///
/// ```swift
/// let w = MapWorkload(rawValue: "load-mostly-hits")!   // .loadMostlyHits
/// w.summary                                           // "load(i % 1024) over 1023 stored keys"
/// ```
public enum MapWorkload: String, CaseIterable, Sendable, Codable {
    case loadMostlyHits = "load-mostly-hits"
    case loadMostlyMisses = "load-mostly-misses"
    case loadOrStoreBalanced = "load-or-store-balanced"
    case loadOrStoreUnique = "load-or-store-unique"
    case loadOrStoreCollision = "load-or-store-collision"
    case loadAndDeleteBalanced = "load-and-delete-balanced"
    case loadAndDeleteUnique = "load-and-delete-unique"
    case loadAndDeleteCollision = "load-and-delete-collision"
    case swapCollision = "swap-collision"
    case swapMostlyHits = "swap-mostly-hits"
    case swapMostlyMisses = "swap-mostly-misses"
    case compareAndSwapCollision = "compare-and-swap-collision"
    case compareAndSwapMostlyHits = "compare-and-swap-mostly-hits"
    case compareAndSwapMostlyMisses = "compare-and-swap-mostly-misses"
    case range = "range"
    case adversarialAlloc = "adversarial-alloc"
    case adversarialDelete = "adversarial-delete"
    case deleteCollision = "delete-collision"
    case mixed9010 = "mixed-90-10"
    case churn = "churn"

    /// What one iteration does, for the README and `--help`.
    public var summary: String {
        switch self {
        case .loadMostlyHits: "load(i % 1024) over 1023 stored keys"
        case .loadMostlyMisses: "load(i % 1024) over 1 stored key"
        case .loadOrStoreBalanced: "j = i % 256: loadOrStore(j) hits if j < 128, else loadOrStore(i) stores a new key"
        case .loadOrStoreUnique: "loadOrStore(i, i): every key new"
        case .loadOrStoreCollision: "loadOrStore(0, 0): all threads, one present key"
        case .loadAndDeleteBalanced: "j = i % 256: loadAndDelete(j) if j < 128 (128 keys stored), else loadAndDelete(i)"
        case .loadAndDeleteUnique: "loadAndDelete(i): every key absent"
        case .loadAndDeleteCollision: "loadAndDelete(0), store(0, 0) again if it was there"
        case .swapCollision: "swap(0, 0)"
        case .swapMostlyHits: "1023 of 1024: swap a stored key; else swap(i, i) then delete(i)"
        case .swapMostlyMisses: "1 of 1024: swap the stored key; else swap(i, i) then delete(i)"
        case .compareAndSwapCollision: "compareAndSwap(0, 0 → 42), then back 42 → 0 if it won"
        case .compareAndSwapMostlyHits: "compareAndSwap(v, v → v), v a stored key 1023 of 1024 times, else i"
        case .compareAndSwapMostlyMisses: "compareAndSwap(v, v → v), v the stored key 1 of 1024 times, else i"
        case .range: "forEach over 1024 keys"
        case .adversarialAlloc: "load(i) a missing key; loadOrStore a new key after `stores` loads"
        case .adversarialDelete: "load(i); every 1024th: delete the first key forEach visits, store(i, i)"
        case .deleteCollision: "delete(0)"
        case .mixed9010: "random key of 1024 stored: 90% load, 10% store"
        case .churn: "store(i, i), delete the key this thread stored 1024 iterations ago"
        }
    }

    /// Whether the workload needs `swap` or `compareAndSwap`, which Go 1.19's `sync.Map` lacks (Go 1.20 added them).
    public var needsSwapOrCAS: Bool {
        switch self {
        case .swapCollision, .swapMostlyHits, .swapMostlyMisses,
            .compareAndSwapCollision, .compareAndSwapMostlyHits, .compareAndSwapMostlyMisses:
            true
        default: false
        }
    }
}

/// Constants shared by the workloads (and mirrored by the Go peer in `scripts/go-syncmap-bench`).
public enum MapWorkloadConstants {
    /// Distance between the key counters of two threads: large enough that no thread reaches the next one's range
    /// (2^36 iterations), and ≡ 1 (mod 1024) so threads do not walk the small key ranges in lock step.
    public static let keySpacing = (1 << 36) + 1
    /// Size of the preloaded key space of `mixed-90-10` and of the per-thread window of `churn`.
    public static let mixedKeys = 1024
    public static let churnWindow = 1024
}
