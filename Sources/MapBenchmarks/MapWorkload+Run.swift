import ConcurrentMaps

// The set-up and hot loops of every workload, generic over the concrete map type.
//
// `runThread` is dispatched once per thread; each `case` is a separate loop, and `drive` is `@inline(__always)`,
// so after specialization for a concrete `M` the loop body calls the map's methods directly (no existential, no
// closure call per operation; checked with objdump, see DESIGN.md). Bodies the optimizer will not inline use
// `driveBatches`, whose closure runs a whole batch.

extension MapWorkload {
    /// Prepares a fresh map as Go's `setup` does, on one thread, before any worker starts.
    public func setUp<M: ConcurrentMap>(_ m: M) where M.Key == Int, M.Value == Int {
        func preload(hits: Int) {
            for k in 0..<hits { _ = m.loadOrStore(k, k) }
            // Prime the map to get it into a steady state (for ReadMostlyMap: promote the dirty map).
            for k in 0..<(hits * 2) { _ = m.load(k % hits) }
        }
        switch self {
        case .loadMostlyHits, .swapMostlyHits, .compareAndSwapMostlyHits: preload(hits: 1023)
        case .loadMostlyMisses, .swapMostlyMisses, .compareAndSwapMostlyMisses: preload(hits: 1)
        case .loadOrStoreBalanced, .loadAndDeleteBalanced: preload(hits: 128)
        case .loadOrStoreCollision, .loadAndDeleteCollision, .swapCollision, .compareAndSwapCollision,
            .deleteCollision:
            _ = m.loadOrStore(0, 0)
        case .range, .adversarialDelete:
            for k in 0..<1024 { m.store(k, k) }
        case .mixed9010:
            preload(hits: MapWorkloadConstants.mixedKeys)
        case .loadOrStoreUnique, .loadAndDeleteUnique, .adversarialAlloc, .churn:
            break
        }
    }

    /// The hot loop of thread `id`: runs until `control` says stop (or `limit` operations), and returns the number of
    /// operations done while measuring plus a checksum of the values read (so no load can be optimized away).
    @inline(never)
    func runThread<M: ConcurrentMap>(_ m: M, id: Int, control: BenchControl, limit: Int?) -> ThreadOutcome
    where M.Key == Int, M.Value == Int {
        var i = id &* MapWorkloadConstants.keySpacing
        var sink = 0
        let ops: Int
        switch self {
        case .loadMostlyHits, .loadMostlyMisses:
            ops = drive(control, limit) {
                sink &+= m.load(i % 1024) ?? 0; i &+= 1
            }
        case .loadOrStoreBalanced:
            ops = drive(control, limit) {
                let j = i % 256
                sink &+= (j < 128 ? m.loadOrStore(j, i) : m.loadOrStore(i, i)).actual
                i &+= 1
            }
        case .loadOrStoreUnique:
            ops = drive(control, limit) {
                sink &+= m.loadOrStore(i, i).actual; i &+= 1
            }
        case .loadOrStoreCollision:
            ops = drive(control, limit) { sink &+= m.loadOrStore(0, 0).actual }
        case .loadAndDeleteBalanced:
            ops = drive(control, limit) {
                let j = i % 256
                sink &+= (j < 128 ? m.loadAndDelete(j) : m.loadAndDelete(i)) ?? 0
                i &+= 1
            }
        case .loadAndDeleteUnique:
            ops = drive(control, limit) {
                sink &+= m.loadAndDelete(i) ?? 0; i &+= 1
            }
        case .loadAndDeleteCollision:
            ops = drive(control, limit) { if m.loadAndDelete(0) != nil { m.store(0, 0); sink &+= 1 } }
        case .swapCollision:
            ops = drive(control, limit) { sink &+= m.swap(0, 0) ?? 0 }
        case .swapMostlyHits, .swapMostlyMisses:
            let hits = self == .swapMostlyHits ? 1023 : 1
            ops = driveBatches(control, limit) { n in
                for _ in 0..<n {
                    let v = i % 1024
                    if v < hits {
                        sink &+= m.swap(v, v) ?? 0
                    } else {
                        sink &+= m.swap(i, i) ?? 0
                        m.delete(i)
                    }
                    i &+= 1
                }
            }
        case .compareAndSwapCollision:
            ops = drive(control, limit) {
                if m.compareAndSwap(0, old: 0, new: 42) { _ = m.compareAndSwap(0, old: 42, new: 0); sink &+= 1 }
            }
        case .compareAndSwapMostlyHits, .compareAndSwapMostlyMisses:
            let hits = self == .compareAndSwapMostlyHits ? 1023 : 1
            ops = drive(control, limit) {
                let v = i % 1024 < hits ? i % 1024 : i
                if m.compareAndSwap(v, old: v, new: v) { sink &+= 1 }
                i &+= 1
            }
        case .range:
            ops = drive(control, limit) {
                m.forEach { _, v in
                    sink &+= v; return true
                }
            }
        case .adversarialAlloc:
            var stores = 0, loadsSinceStore = 0
            ops = drive(control, limit) {
                sink &+= m.load(i) ?? 0
                loadsSinceStore += 1
                if loadsSinceStore > stores {
                    _ = m.loadOrStore(i, stores)
                    loadsSinceStore = 0
                    stores += 1
                }
                i &+= 1
            }
        case .adversarialDelete:
            ops = drive(control, limit) {
                sink &+= m.load(i) ?? 0
                if i % 1024 == 0 {
                    m.forEach { k, _ in
                        m.delete(k); return false
                    }
                    m.store(i, i)
                }
                i &+= 1
            }
        case .deleteCollision:
            ops = drive(control, limit) { m.delete(0) }
        case .mixed9010:
            var rng = XorShift64(seed: UInt64(id + 1))
            let mask = MapWorkloadConstants.mixedKeys - 1
            ops = drive(control, limit) {
                let r = rng.next()
                let k = Int(truncatingIfNeeded: r) & mask
                if (r >> 32) % 10 == 0 { m.store(k, i) } else { sink &+= m.load(k) ?? 0 }
                i &+= 1
            }
        case .churn:
            let window = MapWorkloadConstants.churnWindow
            let start = i
            ops = drive(control, limit) {
                m.store(i, i)
                if i - start >= window { m.delete(i - window) }
                i &+= 1
            }
        }
        return ThreadOutcome(operations: ops, checksum: sink)
    }
}

/// xorshift64: the per-thread generator of `mixed-90-10` (the Go peer uses the same one and the same seeds).
struct XorShift64 {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    @inline(__always)
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}
