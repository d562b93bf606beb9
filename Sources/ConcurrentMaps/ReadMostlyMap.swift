import IsoKVSync
import Synchronization

/// A concurrent map for read-mostly workloads, with the design of Go's `sync.Map`.
///
/// Two tiers. A read-only view (`read`) is published through one atomic pointer and is consulted first, without a
/// lock; a `dirty` dictionary under a mutex holds keys added since the view was taken. Misses that had to take the
/// mutex are counted, and once they reach the dirty map's size the dirty map becomes the new read-only view in O(1).
/// Values live in cells referenced from per-key entries, so updating a key that is already in the read-only view is
/// one compare-and-swap, also without the mutex.
///
/// **Loads write no shared memory.** A load enters an epoch (two atomic increments on a counter of its own thread's
/// stripe, see ``EpochReclaimer``), reads the view through an unmanaged pointer with no retain, looks the key up,
/// and copies the value out of its cell. No reference count, lock or shared word is written; `scripts/probe-no-retain`
/// checks the optimized code of `load` for retains and releases. (Copying a value that itself holds references,
/// such as a `String`, retains *that value*, as any copy in Swift does; `Int`-like values are copied with no write.)
///
/// Use it when keys are written once and read many times (caches that only grow), or when threads read, write and
/// overwrite disjoint key sets. For churn (many new keys, many deletes) prefer ``ShardedMap`` or ``HashTrieMap``:
/// every new key here goes through the mutex, and the first new key after a promotion copies the whole view.
///
/// ```swift
/// let cache = ReadMostlyMap<String, Int>()
/// cache.store("answer", 42)
/// cache.load("answer")                       // 42
/// cache.loadOrStore("answer", 0)             // (42, true)
/// cache.compareAndSwap("answer", old: 42, new: 43)
/// ```
///
/// What it does not promise: ``forEach(_:)`` is not a consistent snapshot, and ``count`` is O(n).
public final class ReadMostlyMap<Key: Hashable & Sendable, Value: Sendable>: ConcurrentMap, @unchecked Sendable {
    // @unchecked Sendable: every mutable field is an atomic, or guarded by `mu`, or immutable after publication;
    // the field comments say which. Cells and entries are freed only through `reclaimer`.

    @usableFromInline typealias ReadOnly = _RMReadOnly<Key>
    @usableFromInline typealias Entry = _RMEntry

    /// The read-only view. Always safe to load inside a reclaimer guard; stored only with `mu` held, by exchange,
    /// after which the previous view is retired. Holds the one +1 reference that keeps the current view alive.
    /// Entries in `read.m` may be updated concurrently without `mu`, but an entry whose word is expunged is only
    /// un-expunged, and added to `dirty`, with `mu` held.
    @usableFromInline let read: Atomic<Unmanaged<ReadOnly>>

    /// The dirty map, the miss counter and the expunged set; see ``State``.
    @usableFromInline let mu: Locked<State>

    /// Frees value cells, entries and views once no load can still see them. Lock order: `mu` before the
    /// reclaimer's internal locks (the reclaimer never calls back into the map while holding them).
    @usableFromInline let reclaimer: EpochReclaimer

    /// Frees a value cell: deinitializes the value and deallocates the cell.
    @usableFromInline let freeCell: @Sendable (UnsafeMutableRawPointer) -> Void
    /// Frees an entry and the cell its word still points to, if any (nobody else can retire that cell: cells are
    /// retired by whoever swaps them out of the word).
    @usableFromInline let freeEntry: @Sendable (UnsafeMutableRawPointer) -> Void

    /// The part of the map guarded by `mu`.
    @usableFromInline
    struct State {
        /// Keys that need `mu`. `nil` until the first new key after a promotion. When non-nil it holds every
        /// non-expunged entry of `read.m` plus the new keys, so promoting it loses nothing.
        /// Expunged entries are never in `dirty`.
        @usableFromInline var dirty: [Key: Entry]? = nil
        /// Loads and updates since the last promotion that had to take `mu` because the key was not in `read.m`.
        /// When it reaches `dirty.count`, copying `dirty` into a new view costs no more than those misses did.
        @usableFromInline var misses = 0
        /// Entries of `read.m` that are expunged (left out of `dirty`). They die when `dirty` is promoted; until then
        /// a store to their key un-expunges them. Invariant: exactly the expunged entries of `read.m`.
        @usableFromInline var expunged: Set<Entry> = []

        @inlinable init() {}
    }

    public init() {
        self.read = Atomic(Unmanaged.passRetained(ReadOnly(m: [:], amended: false)))
        self.mu = Locked(State())
        let freeCell: EpochReclaimer.Deleter = { raw in
            let cell = raw.assumingMemoryBound(to: Value.self)
            cell.deinitialize(count: 1)
            cell.deallocate()
        }
        let freeEntry: EpochReclaimer.Deleter = { raw in
            let word = raw.assumingMemoryBound(to: Atomic<UInt>.self)
            let p = word.pointee.load(ordering: .sequentiallyConsistent)
            if p > _RMEntry.expunged, let cell = UnsafeMutablePointer<Value>(bitPattern: p) {
                cell.deinitialize(count: 1)
                cell.deallocate()
            }
            word.deinitialize(count: 1)
            word.deallocate()
        }
        self.freeCell = freeCell
        self.freeEntry = freeEntry
        self.reclaimer = EpochReclaimer(deleters: [
            freeCell,  // Kind.cell
            freeEntry,  // Kind.entry
            { Unmanaged<ReadOnly>.fromOpaque($0).release() }  // Kind.view
        ])
    }

    /// Indices of the deleters given to `reclaimer`.
    @usableFromInline enum Kind {
        @usableFromInline static var cell: Int { 0 }
        @usableFromInline static var entry: Int { 1 }
        @usableFromInline static var view: Int { 2 }
    }

    deinit {
        // Nobody can be inside a method: they all hold a reference to the map.
        let view = read.load(ordering: .sequentiallyConsistent)
        var all = Set(view.takeUnretainedValue().m.values)
        mu.withLock { if let d = $0.dirty { all.formUnion(d.values) } }
        for e in all { freeEntry(UnsafeMutableRawPointer(e.word)) }
        view.release()
    }

    // MARK: - Reads

    /// The value stored for `key`, or nil. Lock-free and free of shared writes when `key` is in the read-only view
    /// or the view is not amended; otherwise it takes the mutex once (and counts a miss).
    @inlinable
    public func load(_ key: Key) -> Value? {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let (found, amended) = read.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef {
            ($0.m[key], $0.amended)
        }
        if let found { return found.load(Value.self) }
        if !amended { return nil }
        return loadSlow(key)?.load(Value.self)
    }

    /// `load` for a key missing from an amended view: re-check under the lock (the view may have been promoted
    /// since), then look in `dirty`. Caller is inside a reclaimer guard.
    @inlinable @inline(never)
    func loadSlow(_ key: Key) -> Entry? {
        mu.withLock { state -> Entry? in
            let view = read.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
            if let e = view.m[key] { return e }
            guard view.amended else { return nil }
            let e = state.dirty?[key]
            missLocked(&state)
            return e
        }
    }

    /// Calls `body` for every key and value until it returns false; see ``ConcurrentMap/forEach(_:)``.
    ///
    /// If the view is amended it first promotes `dirty` (O(1)), so that the iteration sees every key stored
    /// before the call. The iteration runs inside one reclaimer guard: a long `body` delays reclamation.
    public func forEach(_ body: (Key, Value) throws -> Bool) rethrows {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        if read.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef({ $0.amended }) {
            mu.withLock { state in
                if read.load(ordering: .sequentiallyConsistent).takeUnretainedValue().amended { promoteLocked(&state) }
            }
        }
        let view = read.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
        for (k, e) in view.m {
            guard let v = e.load(Value.self) else { continue }
            if try !body(k, v) { return }
        }
    }

    /// O(n): counts the present values with ``forEach(_:)``.
    public var count: Int {
        var n = 0
        forEach { _, _ in
            n += 1; return true
        }
        return n
    }

    // MARK: - Writes

    public func store(_ key: Key, _ value: Value) { _ = swap(key, value) }

    /// Sets `key` to `value` and returns the previous value. Lock-free when `key` is in the view and not expunged.
    @inlinable
    @discardableResult
    public func swap(_ key: Key, _ value: Value) -> Value? {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let cell = makeCell(value)
        if let e = read.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef({ $0.m[key] }),
            let previous = e.trySwap(cell)
        {
            return takeValue(of: previous)
        }
        return takeValue(of: swapSlow(key, cell))
    }

    /// `swap` through the mutex: un-expunge, or update in `dirty`, or add a new entry to `dirty`.
    /// Returns the previous word (a cell, or nil/expunged for "no value").
    @inlinable @inline(never)
    func swapSlow(_ key: Key, _ cell: UInt) -> UInt {
        mu.withLock { state -> UInt in
            let view = read.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
            if let e = view.m[key] {
                if e.unexpungeLocked() { addUnexpungedLocked(&state, key, e) }
                return e.swapLocked(cell)
            }
            if let e = state.dirty?[key] { return e.swapLocked(cell) }
            addNewKeyLocked(&state, view: view, key, Entry.make(cell))
            return Entry.nilWord
        }
    }

    /// Returns the existing value if any; otherwise stores `value`. Lock-free for keys in the view.
    @inlinable
    public func loadOrStore(_ key: Key, _ value: Value) -> (actual: Value, loaded: Bool) {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        if let e = read.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef({ $0.m[key] }),
            let result = tryLoadOrStore(e, value)
        {
            return result
        }
        return loadOrStoreSlow(key, value)
    }

    @inlinable @inline(never)
    func loadOrStoreSlow(_ key: Key, _ value: Value) -> (actual: Value, loaded: Bool) {
        mu.withLock { state in
            let view = read.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
            if let e = view.m[key] {
                if e.unexpungeLocked() { addUnexpungedLocked(&state, key, e) }
                // Not expunged any more, and only we can expunge (we hold mu): this cannot fail.
                return tryLoadOrStore(e, value)!
            }
            if let e = state.dirty?[key] {
                let result = tryLoadOrStore(e, value)!
                missLocked(&state)
                return result
            }
            addNewKeyLocked(&state, view: view, key, Entry.make(makeCell(value)))
            return (value, false)
        }
    }

    /// Deletes `key` and returns its value. Lock-free for keys in the view.
    @inlinable
    @discardableResult
    public func loadAndDelete(_ key: Key) -> Value? {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let (found, amended) = read.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef {
            ($0.m[key], $0.amended)
        }
        if let found { return takeValue(of: found.delete()) }
        if !amended { return nil }
        return loadAndDeleteSlow(key)
    }

    @inlinable @inline(never)
    func loadAndDeleteSlow(_ key: Key) -> Value? {
        let word = mu.withLock { state -> UInt in
            let view = read.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
            if let e = view.m[key] { return e.delete() }
            guard view.amended, let e = state.dirty?.removeValue(forKey: key) else { return Entry.nilWord }
            missLocked(&state)
            // `e` was only ever in `dirty` (every entry of an older view is in the current view or expunged), so
            // only holders of `mu` could reach it, and it is gone now: retire it, and its cell with it.
            let previous = e.delete()
            retireEntry(e)
            return previous
        }
        return takeValue(of: word)
    }

    /// Replaces the value if `matches` accepts it. Lock-free for keys in the view.
    @inlinable
    public func compareAndSwap(_ key: Key, where matches: (Value) -> Bool, new: Value) -> Bool {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let (found, amended) = read.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef {
            ($0.m[key], $0.amended)
        }
        if let found { return tryCompareAndSwap(found, matches, new) }
        if !amended { return false }
        return compareAndSwapSlow(key, matches, new)
    }

    @inlinable @inline(never)
    func compareAndSwapSlow(_ key: Key, _ matches: (Value) -> Bool, _ new: Value) -> Bool {
        mu.withLock { state in
            let view = read.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
            if let e = view.m[key] { return tryCompareAndSwap(e, matches, new) }
            guard let e = state.dirty?[key] else { return false }
            let swapped = tryCompareAndSwap(e, matches, new)
            missLocked(&state)
            return swapped
        }
    }

    /// Deletes the entry if `matches` accepts its value. Lock-free for keys in the view.
    @inlinable
    public func compareAndDelete(_ key: Key, where matches: (Value) -> Bool) -> Bool {
        let g = reclaimer.enter()
        defer { reclaimer.exit(g) }
        let (found, amended) = read.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef {
            ($0.m[key], $0.amended)
        }
        var entry = found
        if entry == nil && amended { entry = compareAndDeleteSlow(key) }
        guard let e = entry else { return false }
        while true {
            let p = e.word.pointee.load(ordering: .sequentiallyConsistent)
            guard p > Entry.expunged, matches(Entry.cell(p, Value.self).pointee) else { return false }
            if e.word.pointee.compareExchange(expected: p, desired: Entry.nilWord, ordering: .sequentiallyConsistent)
                .exchanged
            {
                retireCell(p)
                return true
            }
        }
    }

    @inlinable @inline(never)
    func compareAndDeleteSlow(_ key: Key) -> Entry? {
        mu.withLock { state -> Entry? in
            let view = read.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
            if let e = view.m[key] { return e }
            guard view.amended, let e = state.dirty?[key] else { return nil }
            missLocked(&state)
            return e
        }
    }

    /// Deletes every entry; see ``ConcurrentMap/clear()``.
    public func clear() {
        mu.withLock { state in
            let view = read.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
            if view.m.isEmpty && !view.amended && state.dirty == nil { return }
            var doomed = Set(view.m.values)
            if let d = state.dirty { doomed.formUnion(d.values) }
            publishLocked(ReadOnly(m: [:], amended: false))
            state = State()
            // A concurrent lock-free writer may still put a cell into one of these entries (its operation is then
            // ordered before the clear); the entry's deleter frees whatever cell the entry holds at the end.
            for e in doomed { retireEntry(e) }
        }
    }

    /// Frees retired memory whose grace period has ended (normally done as a side effect of writes).
    /// Returns how many retired objects still wait for readers.
    @discardableResult
    public func collectGarbage() -> Int { reclaimer.collect() }

    // MARK: - Helpers that need `mu` (caller holds it; `state` is the locked state)

    /// Counts a miss; promotes `dirty` once the misses have paid for it.
    @inlinable
    func missLocked(_ state: inout State) {
        state.misses += 1
        if state.misses < (state.dirty?.count ?? 0) { return }
        promoteLocked(&state)
    }

    /// Makes `dirty` the new read-only view (O(1): the dictionary's storage is shared, not copied), and retires
    /// the old view and the expunged entries, which no new reader can reach.
    @inlinable
    func promoteLocked(_ state: inout State) {
        guard let dirty = state.dirty else { return }
        publishLocked(ReadOnly(m: dirty, amended: false))
        for e in state.expunged { retireEntry(e) }
        state = State()
    }

    /// Creates `dirty` from the view if needed: expunges the entries that hold nil (so that they need not be
    /// copied) and copies the others. O(n), once per dirty generation.
    @inlinable
    func dirtyLocked(_ state: inout State, view: ReadOnly) {
        guard state.dirty == nil else { return }
        var d = [Key: Entry](minimumCapacity: view.m.count)
        for (k, e) in view.m {
            if e.tryExpungeLocked() { state.expunged.insert(e) } else { d[k] = e }
        }
        state.dirty = d
    }

    /// A store found `key` expunged in the view and un-expunged it: it must rejoin `dirty` before anything else.
    @inlinable
    func addUnexpungedLocked(_ state: inout State, _ key: Key, _ e: Entry) {
        state.expunged.remove(e)
        state.dirty![key] = e  // expunged ⇒ dirty exists (expunging happens only while building it)
    }

    /// Adds a key that is in neither map. The first such key after a promotion builds `dirty` and marks the view
    /// amended, so that loads of missing keys know to look in `dirty`.
    @inlinable
    func addNewKeyLocked(_ state: inout State, view: ReadOnly, _ key: Key, _ e: Entry) {
        if !view.amended {
            dirtyLocked(&state, view: view)
            publishLocked(ReadOnly(m: view.m, amended: true))
        }
        state.dirty![key] = e
    }

    /// Replaces the view and retires the old one.
    @inlinable
    func publishLocked(_ view: ReadOnly) {
        let old = read.exchange(Unmanaged.passRetained(view), ordering: .sequentiallyConsistent)
        reclaimer.retire(old.toOpaque(), kind: Kind.view)
    }

    // MARK: - Entry operations that need the map (cells, reclamation)

    @inlinable
    func makeCell(_ value: Value) -> UInt {
        let cell = UnsafeMutablePointer<Value>.allocate(capacity: 1)
        cell.initialize(to: value)
        return UInt(bitPattern: cell)
    }

    /// Frees a cell that was never published.
    @inlinable
    func freeUnpublishedCell(_ word: UInt) { freeCell(UnsafeMutableRawPointer(bitPattern: word)!) }

    @inlinable
    func retireCell(_ word: UInt) { reclaimer.retire(UnsafeMutableRawPointer(bitPattern: word)!, kind: Kind.cell) }

    @inlinable
    func retireEntry(_ e: Entry) { reclaimer.retire(UnsafeMutableRawPointer(e.word), kind: Kind.entry) }

    /// Copies the value out of a word that was just swapped out of an entry, and retires its cell.
    /// nil and expunged words mean "no value".
    @inlinable
    func takeValue(of word: UInt) -> Value? {
        guard word > Entry.expunged else { return nil }
        let v = Entry.cell(word, Value.self).pointee
        retireCell(word)
        return v
    }

    /// Go's `entry.tryLoadOrStore`: nil if the entry is expunged (the caller must take the mutex).
    @inlinable
    func tryLoadOrStore(_ e: Entry, _ value: Value) -> (actual: Value, loaded: Bool)? {
        var p = e.word.pointee.load(ordering: .sequentiallyConsistent)
        if p == Entry.expunged { return nil }
        if p != Entry.nilWord { return (Entry.cell(p, Value.self).pointee, true) }
        let cell = makeCell(value)
        while true {
            let (exchanged, current) = e.word.pointee.compareExchange(
                expected: Entry.nilWord, desired: cell, ordering: .sequentiallyConsistent)
            if exchanged { return (value, false) }
            p = current
            if p == Entry.expunged { freeUnpublishedCell(cell); return nil }
            if p != Entry.nilWord { freeUnpublishedCell(cell); return (Entry.cell(p, Value.self).pointee, true) }
        }
    }

    /// Go's `entry.tryCompareAndSwap`: replaces a present value accepted by `matches`.
    @inlinable
    func tryCompareAndSwap(_ e: Entry, _ matches: (Value) -> Bool, _ new: Value) -> Bool {
        var p = e.word.pointee.load(ordering: .sequentiallyConsistent)
        guard p > Entry.expunged, matches(Entry.cell(p, Value.self).pointee) else { return false }
        let cell = makeCell(new)
        while true {
            let (exchanged, current) = e.word.pointee.compareExchange(
                expected: p, desired: cell, ordering: .sequentiallyConsistent)
            if exchanged { retireCell(p); return true }
            p = current
            guard p > Entry.expunged, matches(Entry.cell(p, Value.self).pointee) else {
                freeUnpublishedCell(cell)
                return false
            }
        }
    }
}

/// The immutable read-only view of a ``ReadMostlyMap``. Never mutated after publication.
@usableFromInline
final class _RMReadOnly<Key: Hashable> {
    /// Every key of the view. Entries may be updated in place (their words are atomic); the dictionary never is.
    @usableFromInline let m: [Key: _RMEntry]
    /// True if `dirty` holds some key that `m` does not.
    @usableFromInline let amended: Bool

    @usableFromInline init(m: [Key: _RMEntry], amended: Bool) {
        self.m = m
        self.amended = amended
    }
}

/// A slot for one key: a pointer to an atomic word shared by the view and `dirty`.
///
/// The word has three states:
/// - `nilWord` (0): deleted; `dirty` is nil or also holds this entry.
/// - `expunged` (1): deleted, and `dirty` exists and does not hold this entry (only `tryExpungeLocked`, with the
///   mutex held, enters this state; only `unexpungeLocked`, with the mutex held, leaves it).
/// - anything else: the address of an immutable cell holding the value. The cell is retired by whoever swaps it out.
@usableFromInline
struct _RMEntry: Hashable {
    @usableFromInline static var nilWord: UInt { 0 }
    @usableFromInline static var expunged: UInt { 1 }

    @usableFromInline let word: UnsafeMutablePointer<Atomic<UInt>>

    @usableFromInline init(word: UnsafeMutablePointer<Atomic<UInt>>) { self.word = word }

    @inlinable static func make(_ initial: UInt) -> _RMEntry {
        let w = UnsafeMutablePointer<Atomic<UInt>>.allocate(capacity: 1)
        w.initialize(to: Atomic(initial))
        return _RMEntry(word: w)
    }

    @inlinable @inline(__always)
    static func cell<V>(_ word: UInt, _: V.Type) -> UnsafeMutablePointer<V> {
        UnsafeMutablePointer<V>(bitPattern: word).unsafelyUnwrapped
    }

    /// The value, or nil if deleted or expunged. Caller is inside a reclaimer guard.
    @inlinable @inline(__always)
    func load<V>(_: V.Type) -> V? {
        let p = word.pointee.load(ordering: .sequentiallyConsistent)
        guard p > Self.expunged else { return nil }
        return Self.cell(p, V.self).pointee
    }

    /// Go's `entry.trySwap`: installs `cell` unless expunged; returns the previous word, or nil if expunged.
    @inlinable
    func trySwap(_ cell: UInt) -> UInt? {
        var p = word.pointee.load(ordering: .sequentiallyConsistent)
        while true {
            if p == Self.expunged { return nil }
            let (exchanged, current) = word.pointee.compareExchange(
                expected: p, desired: cell, ordering: .sequentiallyConsistent)
            if exchanged { return p }
            p = current
        }
    }

    /// Sets the word to nil unless already nil or expunged; returns the previous word.
    @inlinable
    func delete() -> UInt {
        var p = word.pointee.load(ordering: .sequentiallyConsistent)
        while p > Self.expunged {
            let (exchanged, current) = word.pointee.compareExchange(
                expected: p, desired: Self.nilWord, ordering: .sequentiallyConsistent)
            if exchanged { return p }
            p = current
        }
        return Self.nilWord
    }

    /// expunged → nil. Mutex held. True if it was expunged (the caller must add the entry to `dirty`).
    @inlinable
    func unexpungeLocked() -> Bool {
        word.pointee.compareExchange(expected: Self.expunged, desired: Self.nilWord, ordering: .sequentiallyConsistent)
            .exchanged
    }

    /// Unconditional exchange; the entry must not be expunged. Mutex held.
    @inlinable
    func swapLocked(_ cell: UInt) -> UInt {
        word.pointee.exchange(cell, ordering: .sequentiallyConsistent)
    }

    /// nil → expunged. Mutex held. True if the entry is (now) expunged.
    @inlinable
    func tryExpungeLocked() -> Bool {
        var p = word.pointee.load(ordering: .sequentiallyConsistent)
        while p == Self.nilWord {
            let (exchanged, current) = word.pointee.compareExchange(
                expected: Self.nilWord, desired: Self.expunged, ordering: .sequentiallyConsistent)
            if exchanged { return true }
            p = current
        }
        return p == Self.expunged
    }
}

extension ReadMostlyMap {
    /// The internal state, for tests of the state machine.
    struct DebugState: Equatable {
        var readCount: Int
        var amended: Bool
        var dirtyCount: Int?
        var expungedCount: Int
        var misses: Int
    }

    func debugState() -> DebugState {
        mu.withLock { state in
            let view = read.load(ordering: .sequentiallyConsistent).takeUnretainedValue()
            return DebugState(
                readCount: view.m.count, amended: view.amended, dirtyCount: state.dirty?.count,
                expungedCount: state.expunged.count, misses: state.misses)
        }
    }
}
