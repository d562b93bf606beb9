import ConcurrentMaps
import IsoKVCore
import IsoKVSync
import Synchronization

/// The engine's scan index: an ``OrderedIndex`` of key → chain whose current version is published atomically, so
/// that scans read it without any lock while key creation and garbage collection build the next version.
///
/// ```swift
/// let index = ScanIndex()
/// index.withWriterLock { $0.insert(key, chain) }          // published before the closure returns
/// index.read { $0.forEach(in: .all, after: nil, reverse: false) { entry in …; return true } }
/// ```
///
/// * Writers (creating a key's chain, GC removing one) serialize on the writer lock, change their working copy
///   by path copying and publish the new root with one sequentially consistent exchange. Each change is published
///   at once (inside the writer's critical section), so a caller can publish an entry before making its chain
///   reachable elsewhere (``Database/chainForWriting(_:)`` depends on that).
/// * Readers enter an epoch of ``EpochReclaimer`` (two increments of a counter of their own thread's stripe),
///   load the published version and walk it; a replaced version is released only after every reader that may
///   hold it has left. Readers never wait for a writer and write no shared memory except the reference counts
///   the walk itself takes.
/// * Lock order: the writer lock → the key directory's map lock (``Database/chainForWriting(_:)``, GC's removal);
///   the epoch has no lock a reader could wait on.
final class ScanIndex: Sendable {
    /// One published version (a class, so that it can sit in an atomic pointer).
    final class Version: @unchecked Sendable {
        // @unchecked Sendable: immutable; the index's nodes are immutable.
        let index: OrderedIndex<KeyChain>
        init(_ index: OrderedIndex<KeyChain>) { self.index = index }
    }

    /// The atomic pointer readers load and its reclaimer (shared by the writer state, which publishes).
    final class Publisher: Sendable {
        /// +1 retained; replaced with `exchange`, the old one retired to `reclaimer`.
        let current: Atomic<Unmanaged<Version>>
        /// Kind 0: replaced index versions; kind ``ScanIndex/versionKind``: version-list nodes cut from chains;
        /// kinds ``ChainTable/chainKind`` and ``ChainTable/generationKind``: the key directory's removed chains and
        /// replaced slot arrays (one epoch covers a point read's lookup and its walk of the version list).
        let reclaimer = EpochReclaimer(deleters: [
            { Unmanaged<Version>.fromOpaque($0).release() },
            { Unmanaged<VersionNode>.fromOpaque($0).release() },
            { Unmanaged<ChainStorage>.fromOpaque($0).release() },
            { Unmanaged<ChainTable.Generation>.fromOpaque($0).release() }
        ])

        init() { current = Atomic(Unmanaged.passRetained(Version(OrderedIndex()))) }

        deinit {
            // No reader can be inside: readers hold the index, which holds this object.
            current.load(ordering: .sequentiallyConsistent).release()
        }

        func publish(_ index: OrderedIndex<KeyChain>) {
            let old = current.exchange(Unmanaged.passRetained(Version(index)), ordering: .sequentiallyConsistent)
            reclaimer.retire(old.toOpaque(), kind: 0)
        }
    }

    /// What the writer lock guards: the working copy (always equal to the published version outside a change).
    struct Writer {
        private(set) var index = OrderedIndex<KeyChain>()
        let publisher: Publisher

        /// Inserts or replaces `key`'s entry and publishes the result.
        mutating func insert(_ key: Bytes, _ chain: KeyChain) {
            index.insert(key, chain)
            publisher.publish(index)
        }

        /// Removes `key`'s entry (if any) and publishes the result.
        mutating func remove(_ key: Bytes) {
            if index.remove(key) { publisher.publish(index) }
        }
    }

    private let publisher: Publisher
    private let writer: Locked<Writer>
    /// `publisher` and its reclaimer, unretained: readers reach them without touching their reference counts,
    /// which every reader on every thread would otherwise write (two shared cache lines per point read). Valid for
    /// this index's lifetime: `publisher` holds the reclaimer and this index holds `publisher`.
    private let publisherRef: Unmanaged<Publisher>
    private let reclaimerRef: Unmanaged<EpochReclaimer>

    init() {
        let publisher = Publisher()
        self.publisher = publisher
        self.writer = Locked(Writer(publisher: publisher))
        self.publisherRef = .passUnretained(publisher)
        self.reclaimerRef = .passUnretained(publisher.reclaimer)
    }

    /// Runs `body` with the writer lock held; every change `body` makes is published before the change returns.
    func withWriterLock<R>(_ body: (inout Writer) throws -> R) rethrows -> R {
        try writer.withLock(body)
    }

    /// Whether the writer lock is held right now, by any thread (tests).
    var writerLockIsHeld: Bool { writer.withLockIfAvailable { _ in false } ?? true }

    /// Runs `body` on the published version, without a lock. `body` must not suspend (it cannot: it is
    /// synchronous) and should be short: a long one delays the release of replaced versions (never a writer).
    @inline(__always)
    func read<R>(_ body: (borrowing OrderedIndex<KeyChain>) throws -> R) rethrows -> R {
        try withEpoch {
            try publisherRef._withUnsafeGuaranteedRef { publisher in
                try publisher.current.load(ordering: .sequentiallyConsistent)._withUnsafeGuaranteedRef {
                    try body($0.index)
                }
            }
        }
    }

    /// The reclaimer kind of a ``VersionNode`` unlinked from a chain's version list (its deleter releases the
    /// +1 the list held). Retired here, so that one epoch covers both the index and the chains' version lists: a
    /// scan walks both inside ``read(_:)``.
    static let versionKind = 1

    /// The reclaimer that frees replaced index versions and unlinked version nodes.
    var reclaimer: EpochReclaimer { publisher.reclaimer }

    /// Runs `body` inside an epoch of ``reclaimer``: lock-free reads of chains' version lists
    /// (``KeyChain/committedValue(at:)``) are safe in it. Same rules as ``read(_:)``.
    @inline(__always)
    func withEpoch<R>(_ body: () throws -> R) rethrows -> R {
        try reclaimerRef._withUnsafeGuaranteedRef { reclaimer in
            let g = reclaimer.enter()
            defer { reclaimer.exit(g) }
            return try body()
        }
    }

    /// Number of keys in the published version.
    var count: Int { read { $0.count } }
}
