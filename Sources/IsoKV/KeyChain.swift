import IsoKVCore
import ConcurrentMaps
import IsoKVSync
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One committed version of a key, as the readers see it (a copy of a ``VersionNode``'s fields).
struct CommittedVersion {
    /// The value, or nil for a deletion (a tombstone).
    var value: Bytes?
    /// The commit sequence number of the writer: the version's visibility (visible to snapshots `≥ commitTS`) and
    /// its public version number (the ETag).
    var commitTS: UInt64
    /// The transaction that wrote it (for error messages).
    var creator: UInt64
}

/// One committed version in a chain's version list (newest first): a ``SharedBytes`` object whose bytes are the
/// value (none for a deletion), whose words are the commit timestamp and the creator, and whose link is the next
/// older version. Immutable except for the link, which only garbage collection changes (it cuts the list there).
/// A value read from the engine shares the node (``Bytes`` references it; values of at most 15 bytes are copied
/// inline), so a version is one allocation and a read copies nothing. A value the application keeps holds its node,
/// and with it the older nodes linked from it at the time (freed with the value).
///
/// Ownership: the chain's `head` holds +1 on the newest node and every node holds +1 on its `next`. A node leaves
/// the list only with the chain's mutex held (a GC cut, or a durable commit that failed taking its version back)
/// and is then *retired* to the scan index's ``EpochReclaimer`` (kind ``ScanIndex/versionKind``), which releases that
/// +1 once no lock-free reader can still walk it. So a reader inside an epoch may follow `head` and `next` without
/// retaining anything. The link is stored (sequentially consistent) only with the chain's mutex held; read by
/// anyone, lock-free inside an epoch or under the mutex.
typealias VersionNode = SharedBytes

extension SharedBytes {
    /// A new version node: a copy of `value`'s bytes (nil: a deletion), and `next`, whose +1 moves into the node.
    static func version(value: Bytes?, commitTS: UInt64, creator: UInt64, next: Unmanaged<VersionNode>?)
        -> VersionNode
    {
        guard let value else { return make(bytes: nil, word0: commitTS, word1: creator, next: next) }
        return value.withUnsafeBytes { make(bytes: $0, word0: commitTS, word1: creator, next: next) }
    }

    @inline(__always) var commitTS: UInt64 { word0 }
    @inline(__always) var creator: UInt64 { word1 }
    /// A deletion (no value).
    @inline(__always) var isTombstone: Bool { count < 0 }
    /// The value, sharing this node (nil for a deletion).
    @inline(__always) var value: Bytes? { isTombstone ? nil : Bytes(sharing: self) }

    var version: CommittedVersion { CommittedVersion(value: value, commitTS: commitTS, creator: creator) }

    /// The newest node at or below `snapshot` in the list starting at `node` (nil: none): the one walk of a version
    /// list, for every reader (lock-free inside an epoch, or under the chain's mutex).
    @inline(__always)
    static func visible(from node: Unmanaged<VersionNode>?, at snapshot: UInt64) -> Unmanaged<VersionNode>? {
        var cur = node
        while let u = cur {
            let (found, next) = u._withUnsafeGuaranteedRef { n in
                n.commitTS <= snapshot ? (true, nil) : (false, n.loadNext())
            }
            if found { return u }
            cur = next
        }
        return nil
    }
}

/// The tail of a ``KeyChain`` object: the head of its version list, at an address that never changes, right behind
/// the header's last field, the key, so that a point read's key compare and head load usually touch one cache line.
struct ChainSync: ~Copyable {
    /// The head word (``HeadWord``): the newest committed version's address (+1 owned; 0 when there is none) and
    /// bit 0, set once when the chain is retired. Stored (sequentially consistent) only with the chain's lock held
    /// (``ChainLockStripes``); loaded lock-free by readers of committed data inside an epoch of the scan index's
    /// reclaimer.
    let head: Atomic<UInt>
}

/// The chains' locks: a fixed table of glibc adaptive mutexes (as ``Locked``), one cache line each; a chain's lock is
/// the stripe its object's address hashes to. It guards the chain's ``ChainState`` and every store to its `head`
/// and to its nodes' `next`.
///
/// Why a table rather than a mutex in every chain: the lock is idle almost always, and a 40-byte pthread mutex in
/// each chain object made it a 112-byte malloc chunk instead of 80 (32 bytes per key). Why it cannot deadlock: a
/// chain's lock is a leaf — nothing else is locked while it is held, in particular no other chain — so two chains
/// sharing a stripe only take turns (debug builds check the rule on every acquisition). Two busy keys share a stripe
/// with probability 1/``count``.
enum ChainLockStripes {
    /// Stripes (a power of two): 2048 lines, 128 KiB.
    static let count = 2048
    static let lineSize = 64

    /// The table, allocated and initialised once, never freed.
    nonisolated(unsafe) static let table: UnsafeMutableRawPointer = {
        precondition(MemoryLayout<pthread_mutex_t>.size <= lineSize)
        let base = UnsafeMutableRawPointer.allocate(byteCount: count * lineSize, alignment: lineSize)
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        #if canImport(Glibc)
            // Spin a little before parking, as `Locked` does: the critical sections here are short.
            pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        #endif
        for i in 0..<count {
            let m = (base + i * lineSize).bindMemory(to: pthread_mutex_t.self, capacity: 1)
            let rc = pthread_mutex_init(m, &attr)
            precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
        }
        pthread_mutexattr_destroy(&attr)
        return base
    }()

    /// The mutex of the chain object at `object` (Fibonacci hashing of the address; objects are 16-byte aligned).
    @inline(__always)
    static func mutex(for object: UnsafeRawPointer) -> UnsafeMutablePointer<pthread_mutex_t> {
        let h = (UInt(bitPattern: object) &>> 4) &* 0x9E37_79B9_7F4A_7C15
        let i = Int(h &>> UInt(UInt.bitWidth - count.trailingZeroBitCount))
        return (table + i * lineSize).assumingMemoryBound(to: pthread_mutex_t.self)
    }

    #if DEBUG
        /// Debug builds: whether this thread holds a chain lock (non-nil), to check that chain locks never nest —
        /// with stripes, a nested chain lock could be the same mutex.
        static let held: pthread_key_t = {
            var key = pthread_key_t()
            precondition(pthread_key_create(&key, nil) == 0)
            return key
        }()

        /// Debug builds: how many chain locks this thread has taken, so that a test can check that a read path
        /// takes none (`SafeReadOnlyConcurrentTests`).
        static let taken: pthread_key_t = {
            var key = pthread_key_t()
            precondition(pthread_key_create(&key, nil) == 0)
            return key
        }()

        static var takenOnThisThread: Int { Int(bitPattern: pthread_getspecific(taken)) }

        static func countTaken() {
            pthread_setspecific(taken, UnsafeRawPointer(bitPattern: takenOnThisThread + 1))
        }
    #endif

    @inline(__always)
    static func lock(_ m: UnsafeMutablePointer<pthread_mutex_t>) {
        #if DEBUG
            precondition(pthread_getspecific(held) == nil, "a chain lock taken while another is held")
        #endif
        RawLock.lock(m)
        #if DEBUG
            pthread_setspecific(held, UnsafeRawPointer(m))
            countTaken()
        #endif
    }

    @inline(__always)
    static func tryLock(_ m: UnsafeMutablePointer<pthread_mutex_t>) -> Bool {
        #if DEBUG
            precondition(pthread_getspecific(held) == nil, "a chain lock taken while another is held")
        #endif
        guard pthread_mutex_trylock(m) == 0 else { return false }
        #if DEBUG
            pthread_setspecific(held, UnsafeRawPointer(m))
            countTaken()
        #endif
        return true
    }

    @inline(__always)
    static func unlock(_ m: UnsafeMutablePointer<pthread_mutex_t>) {
        #if DEBUG
            pthread_setspecific(held, nil)
        #endif
        pthread_mutex_unlock(m)
    }
}

/// The encoding of ``ChainSync/head``: a node's address (nodes are 16-byte aligned) with the retired flag in bit 0,
/// so that a lock-free reader learns both in one load.
enum HeadWord {
    static let retiredBit: UInt = 1

    @inline(__always)
    static func node(_ word: UInt) -> Unmanaged<VersionNode>? {
        guard let p = UnsafeRawPointer(bitPattern: word & ~retiredBit) else { return nil }
        return Unmanaged.fromOpaque(p)
    }

    @inline(__always)
    static func word(_ node: Unmanaged<VersionNode>?, retired: Bool) -> UInt {
        (node.map { UInt(bitPattern: $0.toOpaque()) } ?? 0) | (retired ? retiredBit : 0)
    }
}

/// A chain's key in 16 bytes (a `Bytes` takes 17, which made the chain object a byte too long for a 64-byte malloc
/// chunk): a key of up to 15 bytes as the two words of its inline form; a longer one as a +1 reference to a
/// ``SharedBytes`` holding its bytes, with all bits of `high` set (an inline form's top byte is its count, ≤ 15).
/// Immutable; the reference is released by the chain's `deinit`.
struct ChainKey {
    let low: UInt64
    let high: UInt64

    static let longMarker = UInt64.max

    init(_ key: Bytes) {
        if let words = key.inlineWords {
            (low, high) = (words.low, words.high)
        } else {
            let object =
                key.sharedObject ?? key.withUnsafeBytes { SharedBytes.make(bytes: $0, word0: 0, word1: 0, next: nil) }
            low = UInt64(UInt(bitPattern: Unmanaged.passRetained(object).toOpaque()))
            high = Self.longMarker
        }
    }

    @inline(__always)
    var isLong: Bool { high == Self.longMarker }

    @inline(__always)
    var longObject: Unmanaged<SharedBytes> { Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: UInt(low))!) }

    /// The key (a long one shares the chain's object).
    @inline(__always)
    var bytes: Bytes {
        isLong ? Bytes(sharing: longObject.takeUnretainedValue()) : Bytes(inlineWords: (low, high))
    }

    /// Runs `body` on the key's bytes (a long key's object is not retained: the caller keeps its owner alive).
    @inline(__always)
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if isLong { return try longObject._withUnsafeGuaranteedRef { try $0.withUnsafeBytes(body) } }
        return try Bytes(inlineWords: (low, high)).withUnsafeBytes(body)
    }

    /// Whether this key sorts before `key` (the order of `Bytes`), without building a `Bytes`.
    @inline(__always)
    func precedes(_ key: Bytes) -> Bool {
        if !isLong, let words = key.inlineWords { return Bytes.inlineLess((low, high), words) }
        return withUnsafeBytes { a in key.withUnsafeBytes { b in Bytes.lessThan(a, b) } }
    }

    /// Whether `key` sorts before this key.
    @inline(__always)
    func follows(_ key: Bytes) -> Bool {
        if !isLong, let words = key.inlineWords { return Bytes.inlineLess(words, (low, high)) }
        return withUnsafeBytes { a in key.withUnsafeBytes { b in Bytes.lessThan(b, a) } }
    }

    /// Whether this is `key`, without building a `Bytes` for a short key.
    @inline(__always)
    func equals(_ key: Bytes) -> Bool {
        if let words = key.inlineWords { return !isLong && words.low == low && words.high == high }
        return isLong
            && longObject._withUnsafeGuaranteedRef { object in
                key.withUnsafeBytes { k in object.withUnsafeBytes { Bytes.sameBytes(k, $0) } }
            }
    }
}

/// What the chain object holds besides its tail. The key is the last field, next to the tail's `head` (see
/// ``ChainSync``): the two things every point read touches.
struct ChainHeader {
    /// Everything mutable except the version list; only reachable with the chain's mutex held.
    var state: ChainState
    /// The key (immutable; released by the chain's `deinit` if long).
    let key: ChainKey
}

/// The uncommitted write of the transaction that holds the row's exclusive lock.
struct PendingWrite {
    var owner: UInt64
    /// The value, or nil for a deletion.
    var value: Bytes?
    /// The version this write becomes, built before the commit's critical sections — the commit lock, and at
    /// `.serializable` the SSI lock and the begin queue's lock around the publication — so that they allocate
    /// nothing: a `malloc` there could wait for the allocator's arena lock, held by another thread freeing retired
    /// versions, and every other committer and serializable begin waited behind it. Unpublished (`commitTS ==
    /// UInt64.max`, no link) until the install sets both. Built with the write for a transaction's first
    /// ``versionsBuiltAtWrite`` writes (no extra visit of the chain), by the commit for the others
    /// (`Transaction.prepareVersions`): a node built at every write of a bulk load interleaved with the index's
    /// path copies and fragmented the heap (`bench memory`, 1M keys in transactions of 1 000 puts: 2.42× → 2.57×
    /// the data), where nodes built together at commit sit together. nil: not built yet (the install builds it).
    var version: VersionNode? = nil

    /// How many writes of a transaction build their version at the write.
    static let versionsBuiltAtWrite = 16

    init(owner: UInt64, value: Bytes?) {
        self.owner = owner
        self.value = value
    }

    /// A write whose version is built now if `buildVersion` (it allocates: call it outside the chain's mutex).
    init(owner: UInt64, value: Bytes?, buildVersion: Bool) {
        self.init(owner: owner, value: value)
        if buildVersion { version = makeVersion() }
    }

    /// A new, unpublished version node for this write (it allocates: call it outside every lock).
    func makeVersion() -> VersionNode {
        VersionNode.version(value: value, commitTS: .max, creator: owner, next: nil)
    }
}

/// A transaction suspended in ``LockManager/acquire(_:txid:mode:wait:timeout:)`` until the row lock is granted.
struct LockWaiter {
    let txid: UInt64
    let mode: RowLockMode
    /// Unique per wait, so that a timeout, a cancellation or a deadlock check removes exactly this wait.
    let ticket: UInt64
    /// An upgrade from `.forShare` to `.forUpdate` by a current holder (queued ahead of non-holders).
    let isUpgrade: Bool
    /// Resumed exactly once, by whoever removes the waiter from `ChainState.waiters`: with success by the
    /// transaction whose release granted the lock, with an error by a timeout, a cancellation or the deadlock check.
    let continuation: CheckedContinuation<Void, any Error>
}

/// Everything the engine knows about one key: its committed versions, the pending write and the row lock.
///
/// One heap object per key: the key and the ``ChainState`` in the header, the head of the version list
/// tail-allocated behind them; the chain's mutex is a stripe of ``ChainLockStripes`` (no lock box, no mutex per
/// key). Committed versions
/// are an immutable list, newest first, published through `head`: readers of committed data at a snapshot (scans)
/// walk it without the mutex, inside an epoch of the scan index's reclaimer (``committedValue(at:)``); pending
/// writes, row locks and waiters stay under the mutex.
///
/// ```swift
/// let chain = KeyChain.make(key: "k")
/// chain.state.withLock { $0.pending = PendingWrite(owner: 7, value: "v") }
/// chain.state.withLock { $0.installLocked(owner: 7, commitTS: 1) }
/// db.index.withEpoch { chain.committedValue(at: 1) }        // "v", no lock
/// ```
///
/// Lives in the key directory (a ``ConcurrentMap`` from key to chain). A chain's lock is a leaf: never held while
/// taking any other lock (DESIGN.md, "Lock order"); nodes cut from the list are retired after it is released.
package struct KeyChain: @unchecked Sendable {
    // @unchecked Sendable: the storage's key is immutable, its state is reached only under the chain's lock, and
    // its tail is an atomic. (A struct around the object because `ManagedBuffer`, which gives the
    // object its tail, is explicitly not Sendable; the struct is one reference, compared by identity.)
    let storage: ChainStorage

    /// A new chain with no version (or, for recovery and tests, with `versions`, oldest first).
    package static func make(key: Bytes) -> KeyChain { make(key: key, versions: []) }

    static func make(key: Bytes, versions: [CommittedVersion]) -> KeyChain {
        KeyChain(storage: ChainStorage.make(key: key, versions: versions))
    }

    /// The key (immutable).
    @inline(__always)
    package var key: Bytes {
        // Through a pointer to the field alone: `$0.pointee.key` is a formal read of the whole header, which a
        // concurrent `withLock` modifies (its `state`), and ThreadSanitizer reports the two accesses as a race.
        storage.withUnsafeMutablePointerToHeader { UnsafePointer($0).pointer(to: \.key)!.pointee.bytes }
    }

    /// The chain's lock and the state it guards: `chain.state.withLock { s in … }`.
    @inline(__always)
    var state: ChainLock { ChainLock(chain: storage) }

    /// The head word (``HeadWord``), loaded lock-free. The caller must be inside an epoch of the scan index's
    /// reclaimer (or hold the chain's mutex) while it uses the node.
    @inline(__always)
    var headWord: UInt { storage.headWord }

    /// The value visible at `snapshot` (nil: absent or deleted), read without the chain's mutex. The caller must
    /// be inside an epoch of the scan index's reclaimer (``ScanIndex/read(_:)``, ``ScanIndex/withEpoch(_:)``) and
    /// must hold a registered snapshot `≤ snapshot` or read at or below `published` (so GC keeps what it needs).
    /// Pending writes are not looked at: the caller has none on this chain (or must use `ChainState.read`).
    /// Returns `.none` if the chain is retired (the caller looks the key up again), `.some(nil)` if absent.
    @inline(__always)
    func committedValue(at snapshot: UInt64) -> Bytes?? {
        switch storage.committedRead(at: snapshot) {
        case .found(let value, _): .some(value)
        case .notFound: .some(nil)
        case .retired: .none
        }
    }

    /// The chain object stored at `chain` (an index entry's, lent in place), not retained: the reference is read as
    /// bits, which is valid while the entry is (the caller is inside the scan index's epoch, which keeps the
    /// published tree and its chains alive). A retain would write the chain's reference count — a cache line that
    /// every other thread scanning the same keys reads.
    @inline(__always)
    static func storage(lentAt chain: UnsafePointer<KeyChain>) -> Unmanaged<ChainStorage> {
        Unmanaged.fromOpaque(UnsafeRawPointer(chain).load(as: UnsafeRawPointer.self))
    }

    /// The head word (``HeadWord``) of the chain lent at `chain` (see ``storage(lentAt:)``), without retaining it.
    @inline(__always)
    static func headWord(lentAt chain: UnsafePointer<KeyChain>) -> UInt {
        storage(lentAt: chain)._withUnsafeGuaranteedRef { $0.headWord }
    }

    /// The newest node at or below `snapshot` in the list whose head word is `word` (nil: none), or `.none` if the
    /// word says the chain is retired. The caller is inside an epoch of the scan index's reclaimer.
    @inline(__always)
    static func visibleNode(head word: UInt, at snapshot: UInt64) -> Unmanaged<VersionNode>?? {
        if word & HeadWord.retiredBit != 0 { return .none }
        return .some(VersionNode.visible(from: HeadWord.node(word), at: snapshot))
    }

    /// Prunes at `horizon` (see `ChainState.pruneLocked`) and retires the nodes it cut, after the mutex is
    /// released (the chain's lock stays a leaf).
    func prune(horizon: UInt64, reclaimer: EpochReclaimer) -> ChainState.PruneResult {
        let (result, cut) = state.withLock { $0.pruneLocked(horizon: horizon) }
        // One retire for the whole cut: its first node holds the rest of the list, released with it.
        if let cut { reclaimer.retire(cut.toOpaque(), kind: ScanIndex.versionKind) }
        return result
    }

    /// Removes the version `commitTS` if it is the newest (a durable commit whose log write failed takes its
    /// version back; it still holds the row's exclusive lock, so it is the newest), retiring its node.
    func removeNewestVersion(commitTS: UInt64, reclaimer: EpochReclaimer) {
        let cut = state.withLock { $0.removeNewestLocked(commitTS: commitTS) }
        if let cut { reclaimer.retire(cut.toOpaque(), kind: ScanIndex.versionKind) }
    }

    /// Tests: replaces the version list by `versions` (oldest first), retiring the old list.
    func replaceVersionsForTesting(_ versions: [CommittedVersion], reclaimer: EpochReclaimer) {
        let old = state.withLock { s -> Unmanaged<VersionNode>? in
            var head: Unmanaged<VersionNode>?
            for v in versions {
                head = .passRetained(
                    VersionNode.version(value: v.value, commitTS: v.commitTS, creator: v.creator, next: head))
            }
            let old = s.headNode
            s.setHeadLocked(head)
            return old
        }
        if let old { reclaimer.retire(old.toOpaque(), kind: ScanIndex.versionKind) }
    }
}

/// The one heap object of a ``KeyChain``: header = key + ``ChainState``; tail = ``ChainSync`` (the list head).
final class ChainStorage: ManagedBuffer<ChainHeader, ChainSync> {
    static func make(key: Bytes, versions: [CommittedVersion]) -> ChainStorage {
        let chain = unsafeDowncast(
            ChainStorage.create(minimumCapacity: 1) { _ in
                ChainHeader(state: ChainState(sync: nil), key: ChainKey(key))
            }, to: ChainStorage.self)
        chain.withUnsafeMutablePointers { header, sync in
            var head: Unmanaged<VersionNode>?
            for v in versions {
                head = .passRetained(
                    VersionNode.version(value: v.value, commitTS: v.commitTS, creator: v.creator, next: head))
            }
            sync.initialize(to: ChainSync(head: Atomic(HeadWord.word(head, retired: false))))
            header.pointee.state.sync = sync
        }
        return chain
    }

    deinit {
        withUnsafeMutablePointerToElements { sync in
            // Nobody can walk the list any more: readers reach it only through a reference to this chain.
            HeadWord.node(sync.pointee.head.load(ordering: .relaxed))?.release()
            sync.deinitialize(count: 1)
        }
        withUnsafeMutablePointerToHeader { header in
            let key = UnsafePointer(header).pointer(to: \.key)!.pointee
            if key.isLong { key.longObject.release() }
        }
    }
}

extension ChainStorage {
    /// What a lock-free read of the committed versions found (``committedRead(at:)``).
    enum CommittedRead {
        /// The newest version at or below the snapshot: its value (nil: a deletion) and commit sequence number.
        case found(Bytes?, commitTS: UInt64)
        /// No version at or below the snapshot in the list (absent then, if the snapshot is registered; see
        /// ``Database/readCommitted(_:snapshot:)`` for an unregistered one).
        case notFound
        /// The chain is retired: the caller looks the key up again.
        case retired
    }

    /// The newest committed version at or below `snapshot`, read without the mutex (see
    /// ``KeyChain/committedValue(at:)`` for the caller's obligations: inside an epoch of the scan index's
    /// reclaimer, no pending write of its own on this chain).
    @inline(__always)
    func committedRead(at snapshot: UInt64) -> CommittedRead {
        switch KeyChain.visibleNode(head: headWord, at: snapshot) {
        case .none: return .retired
        case .some(nil): return .notFound
        case .some(let node?): return node._withUnsafeGuaranteedRef { .found($0.value, commitTS: $0.commitTS) }
        }
    }

    /// The head word (``HeadWord``), loaded lock-free (sequentially consistent).
    @inline(__always)
    var headWord: UInt {
        withUnsafeMutablePointerToElements { $0.pointee.head.load(ordering: .sequentiallyConsistent) }
    }

    /// Whether this chain's key is `key` (the key is immutable; read through a pointer to the field alone, as
    /// ``KeyChain/key`` does).
    @inline(__always)
    func hasKey(_ key: Bytes) -> Bool {
        withUnsafeMutablePointerToHeader { UnsafePointer($0).pointer(to: \.key)!.pointee.equals(key) }
    }
}

extension KeyChain: OrderedIndexValue {
    /// The chain's key words, which an index entry borrows: the chain owns a long key's object.
    @inline(__always)
    var indexKey: ChainKey {
        storage.withUnsafeMutablePointerToHeader { UnsafePointer($0).pointer(to: \.key)!.pointee }
    }
}

/// Whether two chains are the same object (nil equals only nil).
package func === (a: KeyChain?, b: KeyChain?) -> Bool { a?.storage === b?.storage }
/// Whether two chains are different objects.
package func !== (a: KeyChain?, b: KeyChain?) -> Bool { !(a === b) }

extension ObjectIdentifier {
    /// The identity of a chain's object.
    init(_ chain: KeyChain) { self.init(chain.storage) }
}

/// The lock of a ``KeyChain`` (a view, no storage of its own): `withLock` runs a closure on the chain's
/// ``ChainState`` with the chain's mutex held. The body runs synchronously and must not suspend; keep it short.
struct ChainLock {
    unowned(unsafe) let chain: ChainStorage

    @inline(__always)
    func withLock<R>(_ body: (inout ChainState) throws -> R) rethrows -> R {
        let m = ChainLockStripes.mutex(for: Unmanaged.passUnretained(chain).toOpaque())
        ChainLockStripes.lock(m)
        defer { ChainLockStripes.unlock(m) }
        return try chain.withUnsafeMutablePointerToHeader { header in
            try body(&header.pointer(to: \.state)!.pointee)  // the field alone (see `KeyChain.key`)
        }
    }

    /// Runs `body` if the lock is free right now; nil without waiting otherwise.
    func withLockIfAvailable<R>(_ body: (inout ChainState) throws -> R) rethrows -> R? {
        let m = ChainLockStripes.mutex(for: Unmanaged.passUnretained(chain).toOpaque())
        guard ChainLockStripes.tryLock(m) else { return nil }
        defer { ChainLockStripes.unlock(m) }
        return try chain.withUnsafeMutablePointerToHeader { header in
            try body(&header.pointer(to: \.state)!.pointee)  // the field alone (see `KeyChain.key`)
        }
    }
}

/// The row-lock part of a ``ChainState``: what a row has while it is written, locked or waited for. Reached only
/// through its chain's ``ChainState`` (so only with the chain's mutex held); copied on write when a copy of the
/// state shares it, so `ChainState` keeps value semantics.
final class RowLockState {
    var pending: PendingWrite?
    var exclusiveHolder: UInt64 = 0
    var shared: [UInt64] = []
    var waiters: [LockWaiter] = []

    var isIdle: Bool { pending == nil && exclusiveHolder == 0 && shared.isEmpty && waiters.isEmpty }

    func copy() -> RowLockState {
        let c = RowLockState()
        c.pending = pending
        c.exclusiveHolder = exclusiveHolder
        c.shared = shared
        c.waiters = waiters
        return c
    }
}

/// The mutable part of a ``KeyChain``; only reachable with the chain's lock held.
struct ChainState {
    /// The chain's tail (the version-list head); set once when the chain is made. The committed versions are
    /// the list at `sync.head`, newest first, strictly decreasing `commitTS`. Only the commit path adds (a new head,
    /// while its transaction holds the exclusive lock, under the commit lock); only garbage collection removes, from
    /// the old end, versions no registered snapshot can see (see `pruneLocked`), and a failed durable commit takes
    /// its own unpublished newest version back. Every change is made with the chain's mutex held; readers of
    /// committed data may walk the list without it (see ``KeyChain/committedValue(at:)``).
    fileprivate(set) var sync: UnsafeMutablePointer<ChainSync>!
    /// The pending write, lock holders and waiters, in a box allocated only while one of them exists (most rows
    /// are idle most of the time: 8 bytes in every chain instead of 48). Invariant: nil or not idle — every
    /// mutation through the accessors below drops a box that became idle.
    private var rowLock: RowLockState?

    init(sync: UnsafeMutablePointer<ChainSync>?) { self.sync = sync }

    /// The row-lock box, allocated if absent, and copied first if a copy of this state shares it (copy on write:
    /// a `ChainState` copied out of the lock — the consistency checker's view — stays a snapshot and is never
    /// written under its reader).
    private mutating func rowLockBox() -> RowLockState {
        if rowLock == nil {
            rowLock = RowLockState()
        } else if !isKnownUniquelyReferenced(&rowLock) {
            rowLock = rowLock!.copy()
        }
        return rowLock!
    }

    /// A copy that shares nothing mutable with this state (its own row-lock box), for a reader that inspects it
    /// after the lock is released (the consistency checker): with a shared box, the live state's later writes
    /// would be ordered after that reader's reads only through the box's reference count, which ThreadSanitizer
    /// cannot see (the Swift runtime is not instrumented).
    func detachedCopy() -> ChainState {
        var copy = self
        copy.rowLock = rowLock?.copy()
        return copy
    }

    /// Whether the row-lock box is allocated (tests: an idle row must not keep one).
    var isRowLockAllocatedForTesting: Bool { rowLock != nil }

    /// Frees the box once nothing is pending, held or waiting.
    private mutating func dropIdleRowLock() {
        if let box = rowLock, box.isIdle { rowLock = nil }
    }

    /// The uncommitted write. Invariant: `pending == nil || pending!.owner == exclusive`.
    var pending: PendingWrite? {
        get { rowLock?.pending }
        set {
            if newValue == nil && rowLock == nil { return }
            rowLockBox().pending = newValue
            dropIdleRowLock()
        }
    }
    /// Moves `owner`'s uncommitted write out, leaving none (nil, and nothing changed, if the write is not
    /// `owner`'s): the same as reading `pending` and then setting it to nil, without copying the write.
    mutating func takePending(owner: UInt64) -> PendingWrite? {
        guard rowLock != nil else { return nil }
        // Taken first and put back if it is not `owner`'s: reading `owner` in place copied the whole write.
        let box = rowLockBox()
        guard let taken = box.pending.take() else { return nil }
        guard taken.owner == owner else {
            box.pending = consume taken
            return nil
        }
        dropIdleRowLock()
        return taken
    }
    /// The holder of the exclusive (`.forUpdate`) lock, 0 when none (transaction ids start at 1); see `exclusive`.
    private var exclusiveHolder: UInt64 {
        get { rowLock?.exclusiveHolder ?? 0 }
        set {
            if newValue == 0 && rowLock == nil { return }
            rowLockBox().exclusiveHolder = newValue
            dropIdleRowLock()
        }
    }
    /// The holders of the shared (`.forShare`) lock, each once.
    var shared: [UInt64] {
        get { rowLock?.shared ?? [] }
        _modify {
            let box = rowLockBox()
            yield &box.shared
            dropIdleRowLock()
        }
    }
    /// Suspended lock requests in grant order (upgrades first, then FIFO). Invariant: the first waiter is not
    /// grantable (otherwise `grantWaitersLocked` would have granted it).
    var waiters: [LockWaiter] {
        get { rowLock?.waiters ?? [] }
        _modify {
            let box = rowLockBox()
            yield &box.waiters
            dropIdleRowLock()
        }
    }

    /// The holder of the exclusive (`.forUpdate`) lock. Invariant: `exclusive == nil || shared.isEmpty`.
    var exclusive: UInt64? {
        get { exclusiveHolder == 0 ? nil : exclusiveHolder }
        set { exclusiveHolder = newValue ?? 0 }
    }

    /// Set once by garbage collection when the chain has no versions, no pending write, no locks and no waiters and
    /// is being removed from the directory; a retired chain is never used again (callers look the key up anew).
    /// Kept in bit 0 of the head word, so that lock-free readers see it too.
    var retired: Bool {
        get { sync.pointee.head.load(ordering: .sequentiallyConsistent) & HeadWord.retiredBit != 0 }
        set { sync.pointee.head.store(HeadWord.word(headNode, retired: newValue), ordering: .sequentiallyConsistent) }
    }

    /// The newest committed version's node (the lock is held, so the list cannot change under the caller).
    var headNode: Unmanaged<VersionNode>? { HeadWord.node(sync.pointee.head.load(ordering: .sequentiallyConsistent)) }

    /// Makes `node` the newest version (the caller has arranged the +1 the head holds), keeping the retired bit.
    func setHeadLocked(_ node: Unmanaged<VersionNode>?) {
        sync.pointee.head.store(HeadWord.word(node, retired: retired), ordering: .sequentiallyConsistent)
    }

    /// The committed versions, oldest first (a copy: for the checker, statistics and tests).
    var versions: [CommittedVersion] {
        var out: [CommittedVersion] = []
        forEachVersionNewestFirst {
            out.append($0); return true
        }
        out.reverse()
        return out
    }

    /// The newest committed version.
    var newest: CommittedVersion? { headNode?._withUnsafeGuaranteedRef { $0.version } }

    /// The number of committed versions (statistics: no version is copied).
    var versionCount: Int {
        var n = 0
        var cur = headNode
        while let u = cur {
            n += 1
            cur = u._withUnsafeGuaranteedRef { $0.loadNext() }
        }
        return n
    }

    /// Calls `body` with each committed version, newest first, while it returns true.
    func forEachVersionNewestFirst(_ body: (CommittedVersion) throws -> Bool) rethrows {
        var cur = headNode
        while let u = cur {
            let (v, next) = u._withUnsafeGuaranteedRef { ($0.version, $0.loadNext()) }
            if try !body(v) { return }
            cur = next
        }
    }

    // MARK: Reads

    /// The newest committed version visible at `snapshot`.
    func visible(at snapshot: UInt64) -> CommittedVersion? {
        var found: CommittedVersion?
        forEachVersionNewestFirst { v in
            if v.commitTS <= snapshot { found = v; return false }
            return true
        }
        return found
    }

    /// What `txid` reads: its own pending write first, then any pending write if `dirty`, then the committed version
    /// visible at `snapshot`. `.some(nil)` means "absent".
    func read(txid: UInt64, snapshot: UInt64, dirty: Bool) -> Bytes? {
        if let p = pending, dirty || p.owner == txid { return p.value }
        return VersionNode.visible(from: headNode, at: snapshot)?._withUnsafeGuaranteedRef { $0.value }
    }

    // MARK: Row locks

    func heldMode(_ txid: UInt64) -> RowLockMode? {
        if exclusive == txid { return .forUpdate }
        return shared.contains(txid) ? .forShare : nil
    }

    /// A holder other than `txid` whose lock conflicts with `mode`, or nil if the holders allow it.
    func conflictingHolder(_ txid: UInt64, _ mode: RowLockMode) -> UInt64? {
        if let x = exclusive, x != txid { return x }
        if mode == .forUpdate, let s = shared.first(where: { $0 != txid }) { return s }
        return nil
    }

    enum TryAcquire {
        /// Already held in this mode or a stronger one.
        case held
        /// Granted now; the mode held before.
        case granted(previous: RowLockMode?)
        /// Must wait for (or report) this transaction.
        case conflict(blocker: UInt64)
    }

    /// Grants at once if nobody conflicting holds the lock and nobody is queued (a holder upgrading ignores the
    /// queue, whose members wait for it anyway).
    mutating func tryAcquireLocked(_ txid: UInt64, _ mode: RowLockMode) -> TryAcquire {
        let held = heldMode(txid)
        if let held, held.covers(mode) { return .held }
        if let blocker = conflictingHolder(txid, mode) { return .conflict(blocker: blocker) }
        if held == nil, let first = waiters.first { return .conflict(blocker: first.txid) }
        grantLocked(txid, mode)
        return .granted(previous: held)
    }

    mutating func grantLocked(_ txid: UInt64, _ mode: RowLockMode) {
        switch mode {
        case .forUpdate:
            shared.removeAll { $0 == txid }
            exclusive = txid
        case .forShare:
            if exclusive != txid && !shared.contains(txid) { shared.append(txid) }
        }
    }

    mutating func enqueueLocked(_ waiter: LockWaiter) {
        if waiter.isUpgrade {
            let at = waiters.firstIndex { !$0.isUpgrade } ?? waiters.count
            waiters.insert(waiter, at: at)
        } else {
            waiters.append(waiter)
        }
    }

    /// Grants queued requests in order while the front one is compatible; returns the continuations to resume
    /// (after the chain's lock is released).
    mutating func grantWaitersLocked() -> [CheckedContinuation<Void, any Error>] {
        var granted: [CheckedContinuation<Void, any Error>] = []
        while let w = waiters.first, conflictingHolder(w.txid, w.mode) == nil {
            waiters.removeFirst()
            grantLocked(w.txid, w.mode)
            granted.append(w.continuation)
        }
        return granted
    }

    /// Removes the wait `ticket` if it is still queued (nil if it was granted or removed already), and grants
    /// whatever its departure unblocks.
    mutating func removeWaiterLocked(_ ticket: UInt64) -> (LockWaiter?, [CheckedContinuation<Void, any Error>]) {
        guard let i = waiters.firstIndex(where: { $0.ticket == ticket }) else { return (nil, []) }
        let w = waiters.remove(at: i)
        return (w, grantWaitersLocked())
    }

    /// Releases every lock `txid` holds here and drops its pending write (end of transaction).
    mutating func releaseLocked(_ txid: UInt64) -> [CheckedContinuation<Void, any Error>] {
        if pending?.owner == txid { pending = nil }
        if exclusive == txid { exclusive = nil }
        shared.removeAll { $0 == txid }
        return grantWaitersLocked()
    }

    /// Returns `txid`'s lock to `mode` (nil: not held), for rollback to a savepoint.
    mutating func restoreLocked(_ txid: UInt64, to mode: RowLockMode?) -> [CheckedContinuation<Void, any Error>] {
        if exclusive == txid { exclusive = nil }
        shared.removeAll { $0 == txid }
        if let mode { grantLocked(txid, mode) }
        return grantWaitersLocked()
    }

    /// The wait-for edges of every queued request here, computed in one pass: each waiter waits for the holders
    /// that conflict with it and for the requests queued ahead of it that conflict with it. Only the nearest
    /// earlier `.forUpdate` request and the `.forShare` requests after it are listed: an exclusive request waits for
    /// everything ahead of it, so the rest is reachable through it. That keeps a deadlock check linear in the queue
    /// length instead of quadratic (a hot row with a hundred waiters).
    func waitEdges() -> [UInt64: [UInt64]] {
        var edges: [UInt64: [UInt64]] = [:]
        var lastExclusive: UInt64?
        var sharedSinceLastExclusive: [UInt64] = []
        for w in waiters {
            var out: [UInt64] = []
            if let x = exclusive, x != w.txid { out.append(x) }
            if w.mode == .forUpdate {
                out += shared.filter { $0 != w.txid }
                out += sharedSinceLastExclusive.filter { $0 != w.txid }
            }
            if let x = lastExclusive, x != w.txid { out.append(x) }
            if w.mode == .forUpdate {
                lastExclusive = w.txid
                sharedSinceLastExclusive = []
            } else {
                sharedSinceLastExclusive.append(w.txid)
            }
            edges[w.txid, default: []] += out
        }
        return edges
    }

    // MARK: Commit and garbage collection

    /// Turns `owner`'s pending write into the committed version `commitTS` (the new head of the list; the old head
    /// becomes its `next`). Caller holds the commit lock.
    mutating func installLocked(owner: UInt64, commitTS: UInt64) {
        // Moved out of the row-lock box, not copied (`pending`'s getter copies, and its setter then releases the
        // copy's value and node again: two reference-count writes each, inside the commit lock).
        guard var p = takePending(owner: owner) else { return }
        // The node was built by the commit before its critical sections (`Transaction.prepareVersions`); only a
        // commit that did not prepare it allocates here. Its commit number and link are set before it is
        // published: the old head's +1 moves to the node's `next`; the head takes a +1 of the node. Readers that
        // load the new head see the node complete (sequentially consistent store after these stores).
        let node = p.version.take() ?? p.makeVersion()
        node.completeBeforePublication(word0: commitTS, next: headNode)
        setHeadLocked(.passRetained(node))
    }

    /// Unlinks the newest version if its commit number is `commitTS` and returns it for retirement (its +1, which
    /// still holds the rest of the list: the head takes a +1 of its own on the new newest version).
    mutating func removeNewestLocked(commitTS: UInt64) -> Unmanaged<VersionNode>? {
        guard let old = headNode, old._withUnsafeGuaranteedRef({ $0.commitTS == commitTS }) else { return nil }
        let next = old._withUnsafeGuaranteedRef { $0.loadNext() }
        _ = next?.retain()
        setHeadLocked(next)
        return old
    }

    /// Nothing to collect until the key is written again: retired, empty, or one live (non-tombstone) version.
    var needsNoCollection: Bool {
        guard !retired, let h = headNode else { return true }
        return h._withUnsafeGuaranteedRef { !$0.isTombstone && $0.loadNext() == nil }
    }

    enum PruneResult {
        /// At most one live version left: nothing more to collect until the key is written again.
        case clean
        /// Older versions (or a tombstone) still visible to a registered snapshot: look again later.
        case keep
        /// Empty and unlocked: marked retired; the caller removes it from the directory and the index.
        case retire
    }

    /// Drops the versions no snapshot at or after `horizon` can see: everything older than the newest version with
    /// `commitTS ≤ horizon`, and that version too if it is a tombstone. The dropped part of the list is unlinked
    /// (one sequentially consistent store) and its first node returned, still holding its +1 (and through its
    /// link the older ones), for the caller to retire to the epoch reclaimer once the chain's lock is released: a
    /// lock-free reader may be walking it. (One node rather than an array of them: an array cost an allocation per
    /// prune that cut anything, that is per update.)
    mutating func pruneLocked(horizon: UInt64) -> (PruneResult, cut: Unmanaged<VersionNode>?) {
        if retired { return (.clean, nil) }
        var cut: Unmanaged<VersionNode>? = nil
        // Find the newest node with commitTS ≤ horizon and the link that points at it.
        var previous: Unmanaged<VersionNode>? = nil  // the node whose `next` points at `cur`; nil: the head
        var cur = headNode
        while let u = cur {
            let (ts, next) = u._withUnsafeGuaranteedRef {
                ($0.commitTS, $0.loadNext())
            }
            if ts <= horizon {
                let isTombstone = u._withUnsafeGuaranteedRef { $0.isTombstone }
                if isTombstone {
                    // The tombstone and everything older go: cut at the link that points at it.
                    if let previous {
                        previous._withUnsafeGuaranteedRef { $0.storeNext(nil) }
                    } else {
                        setHeadLocked(nil)
                    }
                    cut = u
                } else if let next {
                    // Keep it, drop everything older.
                    u._withUnsafeGuaranteedRef { $0.storeNext(nil) }
                    cut = next
                }
                break
            }
            previous = u
            cur = next
        }
        if headNode == nil && pending == nil && exclusive == nil && shared.isEmpty && waiters.isEmpty {
            retired = true
            return (.retire, cut)
        }
        return (needsNoCollection ? .clean : .keep, cut)
    }
}
