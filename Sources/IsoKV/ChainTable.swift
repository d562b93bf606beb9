import ConcurrentMaps
import IsoKVCore
import IsoKVSync
import Synchronization

/// The engine's default key directory: an open-addressing hash table from key to ``KeyChain`` whose lookups take
/// no lock, write no shared memory and take no reference count, and whose slots are one word: part of the key's
/// hash and the chain's address (the key lives in the chain).
///
/// ```swift
/// let index = ScanIndex()
/// let table = ChainTable(reclaimer: index.reclaimer)
/// _ = table.loadOrStore("k", KeyChain.make(key: "k"))
/// index.withEpoch { table.borrow("k")?.takeUnretainedValue() }   // the chain, valid inside the epoch
/// ```
///
/// * **Slots.** One atomic word per slot (8 bytes, half of a hash-and-pointer pair: 16 MB less at a million keys):
///   0 empty, 1 a tombstone, otherwise the top ``tagBits`` bits of the key's 64-bit keyed hash above the chain's
///   address shifted right by 4 (chain objects are 16-byte aligned and below 2^48, as user addresses are on x86-64
///   and arm64 Linux; checked when stored), the address holding +1 on the chain. Linear probing from the hash's low
///   bits; a slot is filled at most once per generation (an insert never reuses a tombstone).
/// * **Readers** (``borrow(_:)``, inside an epoch of the scan index's reclaimer) load the current generation, probe
///   from the hash, and for a slot holding a chain whose tag matches the key's compare the chain's key (a tag match
///   on another key costs one key compare, one time in 2^20). They never wait and never write.
/// * **Writers** (``loadOrStore(_:_:)``, ``remove(_:)``) serialize on `writer`. An insert publishes the slot's word
///   (sequentially consistent; tag and address in one store); a remove stores a tombstone and retires the chain's +1 to
///   the reclaimer, so a reader that found the chain may use it until it leaves its epoch. When live slots plus
///   tombstones would pass 3/4 of the capacity, the writer copies the live slots into a new generation (twice the
///   size when more than half of them are live, else the same size: a purge of tombstones; each key's hash is
///   computed again from its chain), publishes it with one exchange and retires the old generation (its slots'
///   references move, not copied).
/// * A reader on an old generation sees the table as it was when that generation was replaced: a key inserted
///   since is missing (the insert is ordered after that reader's load), a key removed since is still there with
///   its chain, which is then retired, and the engine's readers look up again when they find a retired chain.
/// * Lock order: the scan index's writer lock → `writer` (``Database/chainForWriting(_:)``, GC's removal); the
///   chain's mutex is never held while taking it.
final class ChainTable: KeyDirectory, @unchecked Sendable {
    // @unchecked Sendable: `current` is atomic, generations are reached only through it (readers inside an epoch),
    // and every change to a generation's slots is made under `writer` with atomic stores.

    /// One generation of slots: `mask + 1` atomic words (see "Slots" above). Its capacity never changes; it is
    /// replaced as a whole.
    final class Generation: @unchecked Sendable {
        let mask: Int
        let words: UnsafeMutablePointer<Atomic<UInt>>

        init(capacity: Int) {
            precondition(capacity >= 8 && capacity & (capacity - 1) == 0, "capacity must be a power of two")
            mask = capacity - 1
            words = .allocate(capacity: capacity)
            for i in 0..<capacity { (words + i).initialize(to: Atomic(0)) }
        }

        deinit {
            words.deinitialize(count: mask + 1)
            words.deallocate()
        }

        var capacity: Int { mask + 1 }

        @inline(__always)
        func word(_ slot: Int) -> UInt { words[slot].load(ordering: .sequentiallyConsistent) }

        /// Fills an empty slot (writer only).
        @inline(__always)
        func fill(_ slot: Int, word: UInt) { words[slot].store(word, ordering: .sequentiallyConsistent) }

        /// Marks a slot removed (writer only).
        @inline(__always)
        func bury(_ slot: Int) { words[slot].store(ChainTable.tombstone, ordering: .sequentiallyConsistent) }
    }

    /// Hash bits kept in a slot, above the 44 bits of a chain's address ÷ 16.
    static let tagBits = 20
    static let addressBits = UInt.bitWidth - tagBits

    /// The slot word of a chain (+1 moves into the slot) whose key hashes to `hash`.
    @inline(__always)
    static func slotWord(hash: UInt, chain bits: UInt) -> UInt {
        precondition(bits & 15 == 0 && bits &>> (addressBits + 4) == 0, "chain address outside the 48-bit space")
        return tag(hash) | bits &>> 4
    }

    /// The tag part of `hash` (its top ``tagBits`` bits, in place), and of a slot word.
    @inline(__always)
    static func tag(_ hash: UInt) -> UInt { hash & ~(UInt.max &>> tagBits) }

    /// The chain address in a live slot word.
    @inline(__always)
    static func address(_ word: UInt) -> UInt { (word & (UInt.max &>> tagBits)) &<< 4 }

    static let empty: UInt = 0
    static let tombstone: UInt = 1
    /// The reclaimer kinds this table retires to (registered by ``ScanIndex``): a removed chain's +1, a replaced
    /// generation.
    static let chainKind = 2
    static let generationKind = 3

    /// What `writer` guards: counts of the current generation's filled slots.
    struct Counts {
        /// Slots holding a chain.
        var live = 0
        /// Slots holding a tombstone.
        var tombstones = 0
    }

    /// The current generation, `Unmanaged<Generation>` bits holding +1. Stored only under `writer`.
    private let current: Atomic<UInt>
    private let writer = Locked(Counts())
    private let reclaimer: EpochReclaimer
    /// The hash seed (per table, random): collisions cannot be chosen without it.
    private let seed = Int.random(in: .min ... .max)

    /// A table whose removed chains and replaced generations are freed by `reclaimer` (the scan index's, whose
    /// epoch the engine's readers are in when they call ``borrow(_:)``).
    init(reclaimer: EpochReclaimer, capacity: Int = 64) {
        self.reclaimer = reclaimer
        current = Atomic(UInt(bitPattern: Unmanaged.passRetained(Generation(capacity: capacity)).toOpaque()))
    }

    deinit {
        // No reader can be inside: readers hold the database, which holds this table.
        let generation = Self.generation(current.load(ordering: .sequentiallyConsistent))
        generation._withUnsafeGuaranteedRef { g in
            for slot in 0..<g.capacity where g.word(slot) > Self.tombstone {
                Self.chain(Self.address(g.word(slot))).release()
            }
        }
        generation.release()
    }

    @inline(__always)
    static func generation(_ bits: UInt) -> Unmanaged<Generation> {
        Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: bits)!)
    }

    @inline(__always)
    static func chain(_ bits: UInt) -> Unmanaged<ChainStorage> {
        Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: bits)!)
    }

    @inline(__always)
    func hash(_ key: Bytes) -> UInt { UInt(bitPattern: key._rawHashValue(seed: seed)) }

    // MARK: Readers

    /// The chain of `key`, not retained: valid only while the caller stays inside an epoch of the reclaimer
    /// (``ScanIndex/withEpoch(_:)``), which it must have entered before calling. Nil if the key has no chain.
    @inline(__always)
    func borrow(_ key: Bytes) -> Unmanaged<ChainStorage>? { borrow(key, hash: hash(key)) }

    /// ``borrow(_:)`` with the key's hash already computed.
    @inline(__always)
    private func borrow(_ key: Bytes, hash h: UInt) -> Unmanaged<ChainStorage>? {
        Self.generation(current.load(ordering: .sequentiallyConsistent))._withUnsafeGuaranteedRef { g in
            var slot = Int(truncatingIfNeeded: h) & g.mask
            let tag = Self.tag(h)
            while true {
                let w = g.word(slot)
                if w == Self.empty { return nil }
                if w != Self.tombstone && Self.tag(w) == tag {
                    let chain = Self.chain(Self.address(w))
                    if chain._withUnsafeGuaranteedRef({ $0.hasKey(key) }) { return chain }
                }
                slot = (slot &+ 1) & g.mask
            }
        }
    }

    func load(_ key: Bytes) -> KeyChain? {
        reclaimer.withGuard { borrow(key).map { KeyChain(storage: $0.takeUnretainedValue()) } }
    }

    func forEach(_ body: (Bytes, KeyChain) -> Bool) {
        reclaimer.withGuard {
            Self.generation(current.load(ordering: .sequentiallyConsistent))._withUnsafeGuaranteedRef { g in
                for slot in 0..<g.capacity {
                    let w = g.word(slot)
                    guard w > Self.tombstone else { continue }
                    let chain = KeyChain(storage: Self.chain(Self.address(w)).takeUnretainedValue())
                    if !body(chain.key, chain) { return }
                }
            }
        }
    }

    /// Live chains and tombstones in the current generation, and its capacity (tests, statistics).
    var occupancy: (live: Int, tombstones: Int, capacity: Int) {
        writer.withLock { counts in
            let capacity = Self.generation(current.load(ordering: .sequentiallyConsistent))
                ._withUnsafeGuaranteedRef { $0.capacity }
            return (counts.live, counts.tombstones, capacity)
        }
    }

    // MARK: Writers

    func loadOrStore(_ key: Bytes, _ chain: KeyChain) -> (actual: KeyChain, loaded: Bool) {
        let h = hash(key)
        return writer.withLock { counts in
            // Under `writer` nothing in the current generation is retired, so borrowed chains stay valid.
            if let existing = borrow(key, hash: h) { return (KeyChain(storage: existing.takeUnretainedValue()), true) }
            if (counts.live + counts.tombstones + 1) * 4 > capacity * 3 { grow(&counts) }
            Self.generation(current.load(ordering: .sequentiallyConsistent))._withUnsafeGuaranteedRef { g in
                let bits = UInt(bitPattern: Unmanaged.passRetained(chain.storage).toOpaque())
                Self.insert(into: g, hash: h, word: Self.slotWord(hash: h, chain: bits))
            }
            counts.live += 1
            return (chain, false)
        }
    }

    func remove(_ chain: KeyChain) {
        let h = hash(chain.key)
        let target = UInt(bitPattern: Unmanaged.passUnretained(chain.storage).toOpaque())
        writer.withLock { counts in
            Self.generation(current.load(ordering: .sequentiallyConsistent))._withUnsafeGuaranteedRef { g in
                var slot = Int(truncatingIfNeeded: h) & g.mask
                while true {
                    let w = g.word(slot)
                    if w == Self.empty { return }
                    if w != Self.tombstone && Self.address(w) == target {
                        g.bury(slot)
                        counts.live -= 1
                        counts.tombstones += 1
                        reclaimer.retire(UnsafeMutableRawPointer(bitPattern: target)!, kind: Self.chainKind)
                        return
                    }
                    slot = (slot &+ 1) & g.mask
                }
            }
        }
    }

    private var capacity: Int {
        Self.generation(current.load(ordering: .sequentiallyConsistent))._withUnsafeGuaranteedRef { $0.capacity }
    }

    /// Replaces the generation by one holding the live slots only, with room for at least one more (writer only).
    private func grow(_ counts: inout Counts) {
        let old = Self.generation(current.load(ordering: .sequentiallyConsistent))
        var capacity = old._withUnsafeGuaranteedRef { $0.capacity }
        while (counts.live + 1) * 2 > capacity { capacity *= 2 }
        let next = Generation(capacity: capacity)
        old._withUnsafeGuaranteedRef { g in
            for slot in 0..<g.capacity {
                let w = g.word(slot)
                guard w > Self.tombstone else { continue }
                let key = Self.chain(Self.address(w))._withUnsafeGuaranteedRef { KeyChain(storage: $0).key }
                Self.insert(into: next, hash: hash(key), word: w)
            }
        }
        counts.tombstones = 0
        current.store(UInt(bitPattern: Unmanaged.passRetained(next).toOpaque()), ordering: .sequentiallyConsistent)
        reclaimer.retire(old.toOpaque(), kind: Self.generationKind)
    }

    /// Fills the first empty slot of `hash`'s probe sequence in `g` with `word` (writer only; `g` has an empty slot).
    private static func insert(into g: Generation, hash: UInt, word: UInt) {
        var slot = Int(truncatingIfNeeded: hash) & g.mask
        while g.word(slot) != empty { slot = (slot &+ 1) & g.mask }
        g.fill(slot, word: word)
    }
}
