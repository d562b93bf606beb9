import IsoKVSync
import Synchronization

/// A concurrent hash-trie map in the spirit of Go 1.24's `sync.Map` (internal/sync.HashTrieMap).
///
/// The key's 64-bit hash is consumed 4 bits per level: each *indirect* node has 16 children, each empty, an
/// indirect node, or a chain of entries whose keys have the same full hash. Loads walk down with atomic loads
/// only (inside an ``EpochReclaimer`` guard, writing no shared memory). Updates walk down the same way, lock the
/// one indirect node that owns the slot, re-check the slot under the lock, and publish a new entry or a new
/// subtree with one store; entries are immutable apart from their `overflow` link, so a replaced entry is retired,
/// never changed. Deleting the last child of a node prunes the node from its parent (locking child, then parent).
///
/// Unlike ``ReadMostlyMap`` it has no global mutex and no promotion: new keys and deletes scale across threads,
/// which makes it the better map for churn; loads pay one atomic load per level (about log16 n).
///
/// ```swift
/// let m = HashTrieMap<String, Int>()
/// m.store("a", 1)
/// m.loadOrStore("a", 2)   // (1, true)
/// m.loadAndDelete("a")    // 1
/// ```
///
/// Not promised: ``forEach(_:)`` is not a snapshot (each key is visited at most once); ``count`` is O(n).
public final class HashTrieMap<Key: Hashable & Sendable, Value: Sendable>: ConcurrentMap, @unchecked Sendable {
    // @unchecked Sendable: the tree is reached only through atomics; slots change only with their node's lock
    // held; entries are immutable after publication except `overflow`, which changes only with the lock held;
    // memory is freed only through `reclaimer`.

    @usableFromInline typealias Entry = _HTEntry<Key, Value>

    /// The root indirect node (never nil, never pruned). Replaced only by `clear`, with `clears` locked.
    @usableFromInline let root: Atomic<UInt>
    /// Frees entries and nodes once no reader can hold them.
    @usableFromInline let reclaimer: EpochReclaimer
    /// Serializes `clear` (two clears must not retire the same old tree); counts clears.
    let clears = Locked<Int>(0)
    @usableFromInline let freeEntry: @Sendable (UnsafeMutableRawPointer) -> Void
    @usableFromInline let freeNode: @Sendable (UnsafeMutableRawPointer) -> Void

    public init() {
        root = Atomic(_HTNode.make(parent: nil).bits)
        let freeEntry: EpochReclaimer.Deleter = { raw in
            let e = raw.assumingMemoryBound(to: _HTEntry<Key, Value>.self)
            e.deinitialize(count: 1)
            e.deallocate()
        }
        let freeNode: EpochReclaimer.Deleter = { raw in _HTNode(bits: UInt(bitPattern: raw)).free() }
        self.freeEntry = freeEntry
        self.freeNode = freeNode
        reclaimer = EpochReclaimer(deleters: [freeEntry, freeNode])  // kinds 0 and 1
    }

    deinit {
        freeTree(_HTNode(bits: root.load(ordering: .sequentiallyConsistent)))
    }

    private func freeTree(_ node: _HTNode) {
        for i in 0..<_HTNode.fanout {
            let w = node.child(i).pointee.load(ordering: .sequentiallyConsistent)
            if w == 0 { continue }
            if w & 1 != 0 {
                forEachInChain(w) { freeEntry(UnsafeMutableRawPointer($0)) }
            } else {
                freeTree(_HTNode(bits: w))
            }
        }
        node.free()
    }

    // MARK: - Reads

    @inlinable @inline(__always)
    static func hash(_ key: Key) -> UInt { UInt(bitPattern: key.hashValue) }

    @inlinable @inline(__always)
    static func entry(_ word: UInt) -> UnsafeMutablePointer<Entry> {
        UnsafeMutablePointer(bitPattern: word & ~1).unsafelyUnwrapped
    }

    /// The value for `key`: a walk of atomic loads, no lock, no shared write.
    @inlinable
    public func load(_ key: Key) -> Value? {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        return Self.lookupFromRoot(root, Self.hash(key), key)
    }

    /// Searches an entry chain. Caller is inside a guard.
    @inlinable
    static func lookup(chain: UInt, _ hash: UInt, _ key: Key) -> Value? {
        var w = chain & ~1
        while w != 0 {
            let e = entry(w)
            if e.pointee.hash == hash && e.pointee.key == key { return e.pointee.value }
            w = e.pointee.overflow.load(ordering: .sequentiallyConsistent)
        }
        return nil
    }

    public func forEach(_ body: (Key, Value) throws -> Bool) rethrows {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        _ = try visit(_HTNode(bits: root.load(ordering: .sequentiallyConsistent)), body)
    }

    private func visit(_ node: _HTNode, _ body: (Key, Value) throws -> Bool) rethrows -> Bool {
        for i in 0..<_HTNode.fanout {
            let w = node.child(i).pointee.load(ordering: .sequentiallyConsistent)
            if w == 0 { continue }
            if w & 1 != 0 {
                var e = w & ~1
                while e != 0 {
                    let p = Self.entry(e)
                    if try !body(p.pointee.key, p.pointee.value) { return false }
                    e = p.pointee.overflow.load(ordering: .sequentiallyConsistent)
                }
            } else if try !visit(_HTNode(bits: w), body) {
                return false
            }
        }
        return true
    }

    /// O(n).
    public var count: Int {
        var n = 0
        forEach { _, _ in
            n += 1; return true
        }
        return n
    }

    // MARK: - Writes

    /// Where a key lives or would be inserted, with its node locked.
    @usableFromInline
    struct LockedSlot {
        @usableFromInline let node: _HTNode
        @usableFromInline let index: Int
        /// The shift that selected `index` (the slot's level).
        @usableFromInline let shift: Int
        /// The slot's word, read with the lock held: 0 or an entry chain.
        @usableFromInline let word: UInt
        @inlinable var slot: UnsafeMutablePointer<Atomic<UInt>> { node.child(index) }

        @inlinable init(node: _HTNode, index: Int, shift: Int, word: UInt) {
            self.node = node
            self.index = index
            self.shift = shift
            self.word = word
        }
    }

    /// Walks down to the slot for `hash` (empty or an entry chain), locks its node and re-checks: if the slot
    /// became an indirect node or the node was pruned meanwhile, starts over. Returns with `node` locked.
    @inlinable
    func lockSlot(_ hash: UInt) -> LockedSlot {
        while true {
            var node = _HTNode(bits: root.load(ordering: .sequentiallyConsistent))
            var shift = UInt.bitWidth
            var index = 0
            while true {
                precondition(shift > 0, "HashTrieMap: ran out of hash bits")
                shift -= _HTNode.bitsPerLevel
                index = Int(truncatingIfNeeded: (hash >> UInt(shift)) & _HTNode.mask)
                let w = node.child(index).pointee.load(ordering: .sequentiallyConsistent)
                if w == 0 || w & 1 != 0 { break }
                node = _HTNode(bits: w)
            }
            node.lock.lock()
            // Re-check: what we saw may have changed before we got the lock.
            let w = node.child(index).pointee.load(ordering: .sequentiallyConsistent)
            if (w == 0 || w & 1 != 0) && !node.isDead {
                return LockedSlot(node: node, index: index, shift: shift, word: w)
            }
            node.lock.unlock()
        }
    }

    /// Finds `key` in the chain of a locked slot: the entry and its predecessor (nil if it is the head).
    @inlinable
    func findLocked(_ s: LockedSlot, _ hash: UInt, _ key: Key)
        -> (previous: UnsafeMutablePointer<Entry>?, entry: UnsafeMutablePointer<Entry>)?
    {
        var previous: UnsafeMutablePointer<Entry>? = nil
        var w = s.word & ~1
        while w != 0 {
            let e = Self.entry(w)
            if e.pointee.hash == hash && e.pointee.key == key { return (previous, e) }
            previous = e
            w = e.pointee.overflow.load(ordering: .sequentiallyConsistent)
        }
        return nil
    }

    @inlinable
    func makeEntry(_ hash: UInt, _ key: Key, _ value: Value, overflow: UInt) -> UnsafeMutablePointer<Entry> {
        let e = UnsafeMutablePointer<Entry>.allocate(capacity: 1)
        e.initialize(to: Entry(hash: hash, key: key, value: value, overflow: overflow))
        return e
    }

    @inlinable
    func retire(_ e: UnsafeMutablePointer<Entry>) { reclaimer.retire(UnsafeMutableRawPointer(e), kind: 0) }

    /// Replaces entry `old` (found by `findLocked`) by a new entry for the same key with `value`.
    @inlinable
    func replaceLocked(
        _ s: LockedSlot, _ found: (previous: UnsafeMutablePointer<Entry>?, entry: UnsafeMutablePointer<Entry>),
        _ value: Value
    ) {
        let old = found.entry
        let new = makeEntry(
            old.pointee.hash, old.pointee.key, value,
            overflow: old.pointee.overflow.load(ordering: .sequentiallyConsistent))
        if let previous = found.previous {
            previous.pointee.overflow.store(UInt(bitPattern: new), ordering: .sequentiallyConsistent)
        } else {
            s.slot.pointee.store(UInt(bitPattern: new) | 1, ordering: .sequentiallyConsistent)
        }
        retire(old)
    }

    /// Unlinks a found entry; prunes empty nodes upward; unlocks the slot's node (and every node it locks).
    @inlinable
    func deleteLockedAndUnlock(
        _ s: LockedSlot, _ hash: UInt,
        _ found: (previous: UnsafeMutablePointer<Entry>?, entry: UnsafeMutablePointer<Entry>)
    ) {
        let next = found.entry.pointee.overflow.load(ordering: .sequentiallyConsistent)
        if let previous = found.previous {
            previous.pointee.overflow.store(next, ordering: .sequentiallyConsistent)
        } else {
            s.slot.pointee.store(next == 0 ? 0 : next | 1, ordering: .sequentiallyConsistent)
        }
        retire(found.entry)
        // Prune: while the locked node is empty and not the root, unlink it from its parent (lock order: child,
        // then parent). A dead parent belongs to a concurrent `clear`, which retires what it detached.
        var node = s.node
        var shift = s.shift
        while let parent = node.parent, node.isEmpty {
            shift += _HTNode.bitsPerLevel
            parent.lock.lock()
            if parent.isDead { parent.lock.unlock(); break }
            node.markDead()
            parent.child(Int(truncatingIfNeeded: (hash >> UInt(shift)) & _HTNode.mask)).pointee
                .store(0, ordering: .sequentiallyConsistent)
            node.lock.unlock()
            reclaimer.retire(node.raw, kind: 1)
            node = parent
        }
        node.lock.unlock()
    }

    /// Builds what replaces a slot holding chain `old` when inserting `new` (whose hash differs or not): a longer
    /// chain if the full hashes are equal, otherwise new indirect nodes down to the level where they differ.
    @inlinable
    func expand(_ old: UInt, _ new: UnsafeMutablePointer<Entry>, _ newHash: UInt, shift: Int, parent: _HTNode) -> UInt {
        let oldHash = Self.entry(old).pointee.hash
        if oldHash == newHash {
            new.pointee.overflow.store(old & ~1, ordering: .sequentiallyConsistent)
            return UInt(bitPattern: new) | 1
        }
        let top = _HTNode.make(parent: parent)
        var node = top
        var shift = shift
        while true {
            precondition(shift > 0, "HashTrieMap: ran out of hash bits")
            shift -= _HTNode.bitsPerLevel
            let oi = Int(truncatingIfNeeded: (oldHash >> UInt(shift)) & _HTNode.mask)
            let ni = Int(truncatingIfNeeded: (newHash >> UInt(shift)) & _HTNode.mask)
            if oi != ni {
                node.child(oi).pointee.store(old, ordering: .sequentiallyConsistent)
                node.child(ni).pointee.store(UInt(bitPattern: new) | 1, ordering: .sequentiallyConsistent)
                return top.bits
            }
            let next = _HTNode.make(parent: node)
            node.child(oi).pointee.store(next.bits, ordering: .sequentiallyConsistent)
            node = next
        }
    }

    /// Inserts a new entry into a locked slot that does not hold `key`.
    @inlinable
    func insertLocked(_ s: LockedSlot, _ hash: UInt, _ key: Key, _ value: Value) {
        let e = makeEntry(hash, key, value, overflow: 0)
        let w = s.word == 0 ? UInt(bitPattern: e) | 1 : expand(s.word, e, hash, shift: s.shift, parent: s.node)
        s.slot.pointee.store(w, ordering: .sequentiallyConsistent)
    }

    public func store(_ key: Key, _ value: Value) { _ = swap(key, value) }

    @inlinable
    @discardableResult
    public func swap(_ key: Key, _ value: Value) -> Value? {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let hash = Self.hash(key)
        let s = lockSlot(hash)
        defer { s.node.lock.unlock() }
        if let found = findLocked(s, hash, key) {
            let previous = found.entry.pointee.value
            replaceLocked(s, found, value)
            return previous
        }
        insertLocked(s, hash, key, value)
        return nil
    }

    @inlinable
    public func loadOrStore(_ key: Key, _ value: Value) -> (actual: Value, loaded: Bool) {
        if let existing = load(key) { return (existing, true) }  // lock-free fast path
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let hash = Self.hash(key)
        let s = lockSlot(hash)
        defer { s.node.lock.unlock() }
        if let found = findLocked(s, hash, key) { return (found.entry.pointee.value, true) }
        insertLocked(s, hash, key, value)
        return (value, false)
    }

    @inlinable
    @discardableResult
    public func loadAndDelete(_ key: Key) -> Value? {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let hash = Self.hash(key)
        if !containsLockFree(hash, key) { return nil }  // absent: no lock
        let s = lockSlot(hash)
        guard let found = findLocked(s, hash, key) else { s.node.lock.unlock(); return nil }
        let value = found.entry.pointee.value
        deleteLockedAndUnlock(s, hash, found)
        return value
    }

    @inlinable
    public func compareAndSwap(_ key: Key, where matches: (Value) -> Bool, new: Value) -> Bool {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let hash = Self.hash(key)
        guard let current = Self.lookupFromRoot(root, hash, key), matches(current) else { return false }
        let s = lockSlot(hash)
        defer { s.node.lock.unlock() }
        guard let found = findLocked(s, hash, key), matches(found.entry.pointee.value) else { return false }
        replaceLocked(s, found, new)
        return true
    }

    @inlinable
    public func compareAndDelete(_ key: Key, where matches: (Value) -> Bool) -> Bool {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let hash = Self.hash(key)
        guard let current = Self.lookupFromRoot(root, hash, key), matches(current) else { return false }
        let s = lockSlot(hash)
        guard let found = findLocked(s, hash, key), matches(found.entry.pointee.value) else {
            s.node.lock.unlock()
            return false
        }
        deleteLockedAndUnlock(s, hash, found)
        return true
    }

    @inlinable
    func containsLockFree(_ hash: UInt, _ key: Key) -> Bool { Self.lookupFromRoot(root, hash, key) != nil }

    /// The lock-free walk of `load`, without entering a guard (the caller is inside one).
    @inlinable
    static func lookupFromRoot(_ root: borrowing Atomic<UInt>, _ hash: UInt, _ key: Key) -> Value? {
        var node = _HTNode(bits: root.load(ordering: .sequentiallyConsistent))
        var shift = UInt.bitWidth
        while shift > 0 {
            shift -= _HTNode.bitsPerLevel
            let w = node.child(Int(truncatingIfNeeded: (hash >> UInt(shift)) & _HTNode.mask)).pointee
                .load(ordering: .sequentiallyConsistent)
            if w == 0 { return nil }
            if w & 1 != 0 { return lookup(chain: w, hash, key) }
            node = _HTNode(bits: w)
        }
        preconditionFailure("HashTrieMap: ran out of hash bits")
    }

    /// Replaces the root with an empty node, then retires the old tree node by node: each node is locked and
    /// marked dead before its children are detached, so a writer that reaches it afterwards starts over from the
    /// new root, and a writer that got there first finishes before the node is detached.
    public func clear() {
        clears.withLock { count in
            count += 1
            let old = root.exchange(_HTNode.make(parent: nil).bits, ordering: .sequentiallyConsistent)
            retireTree(_HTNode(bits: old))
        }
    }

    private func retireTree(_ node: _HTNode) {
        var children: [UInt] = []
        node.lock.withLock {
            node.markDead()
            for i in 0..<_HTNode.fanout {
                let w = node.child(i).pointee.exchange(0, ordering: .sequentiallyConsistent)
                if w != 0 { children.append(w) }
            }
        }
        reclaimer.retire(node.raw, kind: 1)
        for w in children {
            if w & 1 != 0 { forEachInChain(w) { retire($0) } } else { retireTree(_HTNode(bits: w)) }
        }
    }

    private func forEachInChain(_ chain: UInt, _ body: (UnsafeMutablePointer<Entry>) -> Void) {
        var w = chain & ~1
        while w != 0 {
            let e = Self.entry(w)
            w = e.pointee.overflow.load(ordering: .sequentiallyConsistent)
            body(e)
        }
    }

    /// Frees retired memory whose grace period has ended; returns how much still waits.
    @discardableResult
    public func collectGarbage() -> Int { reclaimer.collect() }
}

/// A key, its value and its collision chain. Immutable once published, except `overflow`, which is written only
/// with the owning node's lock held.
@usableFromInline
struct _HTEntry<Key, Value>: ~Copyable {
    @usableFromInline let hash: UInt
    @usableFromInline let key: Key
    @usableFromInline let value: Value
    /// The next entry with the same full hash (untagged address), or 0.
    @usableFromInline let overflow: Atomic<UInt>

    @usableFromInline init(hash: UInt, key: Key, value: Value, overflow: UInt) {
        self.hash = hash
        self.key = key
        self.value = value
        self.overflow = Atomic(overflow)
    }
}

/// An indirect node: 20 atomic words in one 64-byte-aligned block.
///
///     word 0      address of its mutex (immutable)
///     word 1      address of its parent node, 0 for a root (immutable)
///     word 2      dead flag: 1 once pruned or cleared; set with the lock held, never reset
///     word 3      unused
///     words 4…19  the 16 children: 0 (empty), an entry chain (address | 1), or an indirect node (address)
///
/// Children change only with the node's lock held and the node alive.
@usableFromInline
struct _HTNode {
    @usableFromInline static var fanout: Int { 16 }
    @usableFromInline static var bitsPerLevel: Int { 4 }
    @usableFromInline static var mask: UInt { 15 }
    @usableFromInline static var words: Int { 20 }

    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt>>

    @inlinable init(bits: UInt) { words = UnsafeMutablePointer(bitPattern: bits).unsafelyUnwrapped }

    @inlinable var bits: UInt { UInt(bitPattern: words) }
    @inlinable var raw: UnsafeMutableRawPointer { UnsafeMutableRawPointer(words) }

    @inlinable static func make(parent: _HTNode?) -> _HTNode {
        let p = UnsafeMutableRawPointer.allocate(byteCount: words * 8, alignment: 64)
            .bindMemory(to: Atomic<UInt>.self, capacity: words)
        (p + 0).initialize(to: Atomic(RawLock().address))
        (p + 1).initialize(to: Atomic(parent?.bits ?? 0))
        for i in 2..<words { (p + i).initialize(to: Atomic(0)) }
        return _HTNode(bits: UInt(bitPattern: p))
    }

    func free() {
        lock.destroy()
        words.deinitialize(count: Self.words)
        UnsafeMutableRawPointer(words).deallocate()
    }

    @inlinable @inline(__always)
    func child(_ i: Int) -> UnsafeMutablePointer<Atomic<UInt>> { words + 4 + i }

    @inlinable var lock: RawLock { RawLock(address: words[0].load(ordering: .relaxed)) }

    @inlinable var parent: _HTNode? {
        let p = words[1].load(ordering: .relaxed)
        return p == 0 ? nil : _HTNode(bits: p)
    }

    @inlinable var isDead: Bool { words[2].load(ordering: .sequentiallyConsistent) != 0 }

    @inlinable func markDead() { words[2].store(1, ordering: .sequentiallyConsistent) }

    @inlinable var isEmpty: Bool {
        for i in 0..<Self.fanout where child(i).pointee.load(ordering: .sequentiallyConsistent) != 0 { return false }
        return true
    }
}
