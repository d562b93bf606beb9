import IsoKVSync
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Synchronization

/// A map that watches its own workload and moves its entries to the strategy that fits it.
///
/// It starts as a ``ReadMostlyMap`` (lock-free reads, the best map while keys are stable). Every operation is
/// counted on the calling thread's stripe: reads, updates of existing keys, and *churn* (keys created or deleted),
/// which is what a read-mostly map handles worst — each new key takes its mutex and may copy its view. When churn
/// exceeds ``Policy/churnToSwitch`` of a window of operations, the map migrates to ``Policy/churnStrategy``
/// (``HashTrieMap`` by default, whose writes scale). When churn falls below ``Policy/churnToReturn`` and reads make
/// up at least ``Policy/readsToReturn`` of a window, it migrates back. A switch is not considered again until
/// ``Policy/windowsBetweenSwitches`` windows have passed, so a mixed workload does not flap.
///
/// Migration loses nothing: the current generation is *frozen* (new writers wait), writers already inside finish
/// (a striped in-flight counter drains), every entry is copied into a new map, and the new generation is
/// published with one atomic exchange. Readers never wait: the frozen map is still correct until the switch.
/// Writers wait only during a migration (spinning with `sched_yield`, for the time of an O(n) copy).
///
/// ```swift
/// let m = AdaptiveMap<Int, Int>()
/// for k in 0..<100_000 { m.store(k, k) }   // churn: moves to a HashTrieMap
/// for k in 0..<1_000_000 { _ = m.load(k % 100_000) }   // read-mostly again: moves back
/// m.strategy   // .readMostly
/// ```
public final class AdaptiveMap<Key: Hashable & Sendable, Value: Sendable>: ConcurrentMap, @unchecked Sendable {
    // @unchecked Sendable: `current` is atomic; generations are immutable apart from their atomics; counters are
    // atomics; `control` is guarded by its lock.

    /// The implementations the map can run on.
    public enum Strategy: String, Sendable, CaseIterable {
        case readMostly, hashTrie, sharded
    }

    /// When to switch. Fractions are of the operations in one window.
    public struct Policy: Sendable {
        /// Operations per decision window (summed over threads).
        public var window: Int = 1 << 16
        /// Switch away from ``Strategy/readMostly`` when at least this fraction of a window creates or deletes keys.
        public var churnToSwitch: Double = 0.02
        /// Switch back when churn is at most this fraction…
        public var churnToReturn: Double = 0.002
        /// …and reads are at least this fraction.
        public var readsToReturn: Double = 0.9
        /// The strategy for churn.
        public var churnStrategy: Strategy = .hashTrie
        /// Windows to wait after a switch before considering another.
        public var windowsBetweenSwitches: Int = 4
        /// Set to false to keep the map on whatever strategy it is given (switches only by ``AdaptiveMap/switchStrategy(to:)``).
        public var adaptive = true

        public init() {}
    }

    /// One concrete map; a closed set so that dispatch is a switch, not a witness-table call.
    @usableFromInline
    enum Impl {
        case readMostly(ReadMostlyMap<Key, Value>)
        case hashTrie(HashTrieMap<Key, Value>)
        case sharded(ShardedMap<Key, Value>)

        init(_ s: Strategy) {
            switch s {
            case .readMostly: self = .readMostly(ReadMostlyMap())
            case .hashTrie: self = .hashTrie(HashTrieMap())
            case .sharded: self = .sharded(ShardedMap())
            }
        }

        var map: any ConcurrentMap<Key, Value> {
            switch self {
            case .readMostly(let m): return m
            case .hashTrie(let m): return m
            case .sharded(let m): return m
            }
        }
    }

    /// One strategy's lifetime: the map, whether it is frozen for migration, and its writers in flight.
    @usableFromInline
    final class Generation {
        @usableFromInline let strategy: Strategy
        @usableFromInline let impl: Impl
        /// Set once, by a migration, before it waits for `writers` to drain. A writer that sees it set must not
        /// write here and waits for the next generation.
        @usableFromInline let frozen = Atomic<Bool>(false)
        /// Writers in flight on this generation, striped like the reclaimer's counters.
        @usableFromInline let writers: UnsafeMutablePointer<Atomic<Int>>
        @usableFromInline let mask: Int

        init(_ strategy: Strategy, stripes: Int) {
            self.strategy = strategy
            self.impl = Impl(strategy)
            self.mask = stripes - 1
            writers = .allocate(capacity: stripes * 16)
            for i in 0..<(stripes * 16) { (writers + i).initialize(to: Atomic(0)) }
        }

        deinit {
            writers.deinitialize(count: (mask + 1) * 16)
            writers.deallocate()
        }

        var writersInFlight: Int {
            (0...mask).reduce(0) { $0 + writers[$1 * 16].load(ordering: .sequentiallyConsistent) }
        }
    }

    /// The live generation; replaced only by a migration (under `control`'s lock), old one retired.
    @usableFromInline let current: Atomic<Unmanaged<Generation>>
    /// Keeps retired generations alive while a reader may still use one.
    @usableFromInline let reclaimer: EpochReclaimer
    /// Per-stripe operation counts, 16 words (128 bytes) per stripe: [0] operations, [1] reads, [2] churn.
    /// Updated with relaxed load + store (an occasional lost count between two threads sharing a stripe is fine
    /// for statistics).
    @usableFromInline let counters: UnsafeMutablePointer<Atomic<Int>>
    @usableFromInline let mask: Int
    /// The policy, and the counts at the start of the current window.
    let control: Locked<Control>

    struct Control {
        var policy: Policy
        var windowStart = (ops: 0, reads: 0, churn: 0)
        /// Windows closed since the last switch. Starts "long ago", so the first window can already switch.
        var windowsSinceSwitch: Int
        var switches = 0

        init(policy: Policy) {
            self.policy = policy
            self.windowsSinceSwitch = policy.windowsBetweenSwitches
        }
    }

    /// A map starting on ``Strategy/readMostly`` with the default policy.
    public convenience init() { self.init(strategy: .readMostly, policy: Policy()) }

    /// A map starting on `strategy`, switching per `policy`.
    public init(strategy: Strategy, policy: Policy) {
        var n = 1
        while n < max(16, 4 * ProcessInfoLite.activeProcessorCount) { n <<= 1 }
        mask = n - 1
        counters = .allocate(capacity: n * 16)
        for i in 0..<(n * 16) { (counters + i).initialize(to: Atomic(0)) }
        current = Atomic(Unmanaged.passRetained(Generation(strategy, stripes: n)))
        reclaimer = EpochReclaimer(stripes: n, deleters: [{ Unmanaged<Generation>.fromOpaque($0).release() }])
        control = Locked(Control(policy: policy))
    }

    deinit {
        current.load(ordering: .sequentiallyConsistent).release()
        counters.deinitialize(count: (mask + 1) * 16)
        counters.deallocate()
    }

    /// The strategy in use now.
    public var strategy: Strategy {
        reclaimer.withGuard { current.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef { $0.strategy } }
    }

    /// How many migrations have happened.
    public var switchCount: Int { control.withLock { $0.switches } }

    // MARK: - Observation

    @usableFromInline enum Kind { case read, update, churn }

    @inlinable @inline(__always)
    func observe(_ kind: Kind) {
        let base = counters + (ThreadStripe.current() & mask) &* 16
        let ops = base.pointee.load(ordering: .relaxed) &+ 1
        base.pointee.store(ops, ordering: .relaxed)
        switch kind {
        case .read: (base + 1).pointee.store((base + 1).pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        case .churn: (base + 2).pointee.store((base + 2).pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        case .update: break
        }
        if ops & 1023 == 0 { evaluate() }
    }

    /// Closes a window if enough operations have passed and applies the policy. Never waits for another evaluator.
    @usableFromInline @inline(never)
    func evaluate() {
        var target: Strategy? = nil
        control.withLockIfAvailable { c in
            var ops = 0, reads = 0, churn = 0
            for s in 0...mask {
                ops &+= counters[s * 16].load(ordering: .relaxed)
                reads &+= counters[s * 16 + 1].load(ordering: .relaxed)
                churn &+= counters[s * 16 + 2].load(ordering: .relaxed)
            }
            let windowOps = ops - c.windowStart.ops
            guard windowOps >= c.policy.window else { return }
            let readFraction = Double(reads - c.windowStart.reads) / Double(windowOps)
            let churnFraction = Double(churn - c.windowStart.churn) / Double(windowOps)
            c.windowStart = (ops, reads, churn)
            c.windowsSinceSwitch += 1
            guard c.policy.adaptive, c.windowsSinceSwitch > c.policy.windowsBetweenSwitches else { return }
            let now = strategy
            if now == .readMostly, churnFraction >= c.policy.churnToSwitch {
                target = c.policy.churnStrategy
            } else if now != .readMostly, churnFraction <= c.policy.churnToReturn,
                readFraction >= c.policy.readsToReturn
            {
                target = .readMostly
            }
        }
        if let target { switchStrategy(to: target) }
    }

    // MARK: - Migration

    /// Moves every entry to a new map of strategy `s` (no-op if already there). Safe to call at any time, from
    /// any thread; concurrent operations are ordered before or after it.
    public func switchStrategy(to s: Strategy) {
        control.withLock { c in
            let old = current.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
            guard old.strategy != s else { return }
            // 1. Freeze: from now on a writer that checks `frozen` backs off.
            old.frozen.store(true, ordering: .sequentiallyConsistent)
            // 2. Drain: writers that checked before the freeze finish their one operation.
            while old.writersInFlight != 0 { sched_yield() }
            // 3. Copy: nothing writes to `old` any more.
            let next = Generation(s, stripes: mask + 1)
            let target = next.impl.map
            old.impl.map.forEach { k, v in
                target.store(k, v); return true
            }
            // 4. Publish, and retire the old generation once no reader can still be using it.
            let retired = current.exchange(Unmanaged.passRetained(next), ordering: .sequentiallyConsistent)
            reclaimer.retire(retired.toOpaque(), kind: 0)
            c.windowsSinceSwitch = 0
            c.switches += 1
        }
    }

    // MARK: - Dispatch

    @inlinable @inline(__always)
    func read<R>(_ body: (Impl) -> R) -> R {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        return current.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef { body($0.impl) }
    }

    /// Runs a write on the live generation, registered as in flight so that a migration waits for it.
    @inlinable
    func write<R>(_ body: (Impl) -> R) -> R {
        while true {
            let g = reclaimer.enter()
            let result: R? = current.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef { gen in
                let slot = gen.writers + (ThreadStripe.current() & gen.mask) &* 16
                slot.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
                defer { slot.pointee.wrappingSubtract(1, ordering: .releasing) }
                // Dekker with the migration: it stores `frozen` then reads the counters; we increment then read
                // `frozen`. All sequentially consistent, so one of us sees the other.
                if gen.frozen.load(ordering: .sequentiallyConsistent) { return nil }
                return body(gen.impl)
            }
            reclaimer.exit(g)
            if let result { return result }
            sched_yield()  // a migration is copying; wait for the next generation
        }
    }

    // MARK: - ConcurrentMap

    @inlinable
    public func load(_ key: Key) -> Value? {
        let v = read { impl -> Value? in
            switch impl {
            case .readMostly(let m): return m.load(key)
            case .hashTrie(let m): return m.load(key)
            case .sharded(let m): return m.load(key)
            }
        }
        observe(.read)
        return v
    }

    public func store(_ key: Key, _ value: Value) { _ = swap(key, value) }

    @inlinable
    @discardableResult
    public func swap(_ key: Key, _ value: Value) -> Value? {
        let previous = write { impl -> Value? in
            switch impl {
            case .readMostly(let m): return m.swap(key, value)
            case .hashTrie(let m): return m.swap(key, value)
            case .sharded(let m): return m.swap(key, value)
            }
        }
        observe(previous == nil ? .churn : .update)
        return previous
    }

    @inlinable
    public func loadOrStore(_ key: Key, _ value: Value) -> (actual: Value, loaded: Bool) {
        // Each map's own loadOrStore already tries a lock-free hit first; a separate `load` here would make a
        // ReadMostlyMap count two misses per new key and promote twice as often.
        let r = write { impl -> (actual: Value, loaded: Bool) in
            switch impl {
            case .readMostly(let m): return m.loadOrStore(key, value)
            case .hashTrie(let m): return m.loadOrStore(key, value)
            case .sharded(let m): return m.loadOrStore(key, value)
            }
        }
        observe(r.loaded ? .read : .churn)
        return r
    }

    @inlinable
    @discardableResult
    public func loadAndDelete(_ key: Key) -> Value? {
        let v = write { impl -> Value? in
            switch impl {
            case .readMostly(let m): return m.loadAndDelete(key)
            case .hashTrie(let m): return m.loadAndDelete(key)
            case .sharded(let m): return m.loadAndDelete(key)
            }
        }
        observe(v == nil ? .update : .churn)
        return v
    }

    @inlinable
    public func compareAndSwap(_ key: Key, where matches: (Value) -> Bool, new: Value) -> Bool {
        let swapped = write { impl -> Bool in
            switch impl {
            case .readMostly(let m): return m.compareAndSwap(key, where: matches, new: new)
            case .hashTrie(let m): return m.compareAndSwap(key, where: matches, new: new)
            case .sharded(let m): return m.compareAndSwap(key, where: matches, new: new)
            }
        }
        observe(.update)
        return swapped
    }

    @inlinable
    public func compareAndDelete(_ key: Key, where matches: (Value) -> Bool) -> Bool {
        let deleted = write { impl -> Bool in
            switch impl {
            case .readMostly(let m): return m.compareAndDelete(key, where: matches)
            case .hashTrie(let m): return m.compareAndDelete(key, where: matches)
            case .sharded(let m): return m.compareAndDelete(key, where: matches)
            }
        }
        observe(deleted ? .churn : .update)
        return deleted
    }

    /// Iterates the live generation. If a migration happens meanwhile, the iteration finishes on the frozen
    /// generation: it may miss writes made after the migration, as any non-snapshot iteration may.
    public func forEach(_ body: (Key, Value) throws -> Bool) rethrows {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let gen = current.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
        try gen.impl.map.forEach(body)
    }

    public func clear() {
        _ = write { impl -> Bool in
            impl.map.clear(); return true
        }
    }

    public var count: Int { read { $0.map.count } }
}
