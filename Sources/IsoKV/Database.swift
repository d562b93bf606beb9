import ConcurrentMaps
import IsoKVCore
import IsoKVSync
import Synchronization

/// The embedded IsoKV engine: MVCC over per-key version chains, row locks with deadlock detection, three isolation
/// levels (see `IsolationLevel`), savepoints and optimistic single-key operations.
///
/// ```swift
/// let db = Database.inMemory()
/// try await db.transaction(.snapshot) { tx in
///     try await tx.put("greeting", "hello")
/// }
/// let tx = try await db.begin(.readCommitted)        // manual form
/// _ = try await tx.get("greeting")
/// try await tx.commit()
/// ```
///
/// Entry points: ``begin(_:readOnly:)`` and `transaction {}` (from `KeyValueStore`); the single-key operations
/// ``get(_:)``, ``put(_:_:ifVersion:)``, ``put(_:_:ifAbsent:)``, ``delete(_:ifVersion:)``, ``increment(_:by:)``
/// (and `update`, from `KeyValueStore`); ``statistics()``; ``check(_:)`` (the consistency checker).
///
/// Locks: the engine's one lock order is in DESIGN.md ("Lock order").
///
/// Durable: ``open(path:options:)`` (write-ahead log with group commit, checkpoints, recovery; see
/// `Database+Open.swift`). ``inMemory(_:)`` keeps everything in memory only.
public final class Database: KeyValueStore, Sendable {
    public typealias Transaction = IsoKV.Transaction

    /// Settings of a database.
    public struct Configuration: Sendable, Hashable {
        /// Size limits (`54000`/`22023`).
        public var limits = Limits()
        /// How long a blocking row-lock request waits before failing with `55P03`; nil waits until granted,
        /// cancelled, or chosen as a deadlock victim (PostgreSQL's default `lock_timeout = 0`).
        public var lockTimeout: Duration?
        /// SSI memory bounds for `.serializable` transactions (escalation thresholds).
        public var serializable = SerializableLimits()
        /// Strict mode, for tests (bbolt's `StrictMode`): after every successful commit, run ``Database/check(_:)``
        /// in `.concurrent` mode (a walk of every chain and the SSI state: O(keys + locks + SSI records) per
        /// commit — slow); if it finds anything, that commit throws `XX000` (`IsoKVError.Code.internalError`)
        /// listing the findings. The commit itself has taken effect. Default false.
        public var checkAfterEveryCommit = false

        public init(
            limits: Limits = Limits(), lockTimeout: Duration? = nil,
            serializable: SerializableLimits = SerializableLimits(), checkAfterEveryCommit: Bool = false
        ) {
            self.limits = limits
            self.lockTimeout = lockTimeout
            self.serializable = serializable
            self.checkAfterEveryCommit = checkAfterEveryCommit
        }
    }

    /// The rest of the object header's cache line (16 bytes of header + these 48), left empty: the header holds the
    /// reference count, which every transaction's begin and end writes (a `Transaction` holds an owner, see
    /// `owners`: the threads of one stripe share it). The fields below are read on every operation; sharing that
    /// line, each of those loads missed after another thread's begin or end.
    private let headerLinePadding: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
    public let configuration: Configuration
    /// Clocks and live snapshots.
    let oracle: Oracle
    /// `oracle`, unretained (this database holds it), for the per-transaction paths. A call through `db.oracle`
    /// retained and released the oracle around it: two writes of its reference count, which sits on the cache line
    /// of `published`, the word every snapshot registration reads — in a read-only load the first miss of every
    /// transaction (about a third of `Transaction.get`'s own samples in a ycsb-c profile).
    let oracleRef: Unmanaged<Oracle>
    /// Lock waits and deadlock detection.
    let lockManager: LockManager
    /// Key → chain. Point reads go straight here without any global lock; a chain is stored once per key lifetime
    /// and removed only by garbage collection after it was marked retired.
    let directory: any KeyDirectory
    /// `directory` when it is the default ``ChainTable`` (nil when a benchmark chose another map), unretained
    /// (alive as long as this database: `directory` holds it): point reads borrow the chain from it and read the
    /// version list without a lock or a reference count (``readCommitted(_:snapshot:)``); a retain per read would
    /// make every reader write the table's reference count, one cache line shared by all threads.
    let tableRef: Unmanaged<ChainTable>?
    /// Sorted keys for scans, each with its chain; scans read the published version without a lock
    /// (`ScanIndex.swift`). Invariant: every key with a chain in `directory` is in the published index at every
    /// instant (a new chain is inserted and published before it is stored in the directory, under the index's
    /// writer lock, ``chainForWriting(_:)``; removed only by GC after the chain left the directory, re-checked under
    /// the writer lock). The chain stored with a key may be an older, retired one for a moment (a new chain for the
    /// key replaces it when it is indexed), or, for a moment, a new chain not yet in the directory (empty: nobody
    /// can have written it): a chain that is not retired and is in the directory is the directory's chain for its
    /// key, because a key gets a new chain only after the old one was retired and removed.
    let index: ScanIndex
    /// Version garbage collection.
    let gc: GarbageCollector
    /// Failures counted by cause, for ``statistics()``.
    let failureCounts: FailureCounters
    /// The write-ahead log and checkpoint state of a database opened with `open(path:options:)`; nil for
    /// `inMemory()`. Immutable (see `DurableStore.swift`).
    let durable: DurableStore?
    /// Serializable snapshot isolation state (SSI/).
    let ssi: SSIManager
    /// `ssi`, unretained (this database holds it), for the per-transaction paths (`Transaction.withSSI`), as
    /// `oracleRef`: every serializable transaction of every thread calls into it, and a retain around each call
    /// wrote its reference count, one cache line for all of them.
    let ssiRef: Unmanaged<SSIManager>
    /// Transactions that have not ended, for ``check(_:)`` (LiveTransactions.swift).
    let live: LiveTransactions
    /// `live` and `gc`, unretained (this database holds them), for the per-transaction paths: a retain there
    /// writes the object's reference count, a cache line every thread shares (as `tableRef`).
    let liveRef: Unmanaged<LiveTransactions>
    let gcRef: Unmanaged<GarbageCollector>
    /// The database's transaction owners, one per thread stripe: instances of this class that share every part of
    /// this one (the fields above are the same objects), so that a `Transaction` keeps its owner alive (a retain at
    /// begin, a release at its end) by writing the reference count of its beginning thread's instance instead of
    /// one count every beginning thread writes (the retain and release of that one shared line were about a
    /// quarter of a one-read transaction's time at 2 threads). Nil in the owners themselves.
    ///
    /// Invariants: allocated and initialized in the designated `init`, never written after it, deinitialized in
    /// `deinit` (this handle's end); each owner outlives the transactions that hold it, and with it the shared
    /// parts, so a transaction may outlive the handle its caller began it on. A transaction begun through an owner
    /// (code that holds one, as a transaction's own `db`) holds that owner: `transactionOwner(thread:)` is `self` there.
    nonisolated(unsafe) private let owners: UnsafeMutablePointer<Database>?
    /// How many owners a database has (a power of two: the thread stripe is masked with `ownerCount - 1`).
    static let ownerCount = 8

    /// An empty in-memory database.
    public static func inMemory(_ configuration: Configuration = Configuration()) -> Database {
        Database(configuration: configuration)
    }

    /// A database over the default key directory (a ``ChainTable``) or, for the benchmarks, a chosen one.
    package init(
        configuration: Configuration = Configuration(), directory: (any KeyDirectory)? = nil,
        durable: DurableStore? = nil
    ) {
        self.configuration = configuration
        let oracle = Oracle()
        self.oracle = oracle
        self.oracleRef = .passUnretained(oracle)
        let live = LiveTransactions()
        self.live = live
        self.liveRef = .passUnretained(live)
        let gc = GarbageCollector()
        self.gc = gc
        self.gcRef = .passUnretained(gc)
        let index = ScanIndex()
        self.index = index
        if let directory {
            self.directory = directory
            self.tableRef = nil
        } else {
            let table = ChainTable(reclaimer: index.reclaimer)
            self.directory = table
            self.tableRef = .passUnretained(table)
        }
        self.durable = durable
        let ssi = SSIManager(limits: configuration.serializable, oracle: oracle)
        self.ssi = ssi
        self.ssiRef = .passUnretained(ssi)
        self.lockManager = LockManager()
        self.failureCounts = FailureCounters()
        let owners = UnsafeMutablePointer<Database>.allocate(capacity: Self.ownerCount)
        self.owners = owners
        for i in 0..<Self.ownerCount { (owners + i).initialize(to: Database(sharing: self)) }
    }

    /// A transaction owner of `handle` (see `owners`): the same parts, no owners of its own.
    private init(sharing handle: Database) {
        configuration = handle.configuration
        oracle = handle.oracle
        oracleRef = handle.oracleRef
        lockManager = handle.lockManager
        directory = handle.directory
        tableRef = handle.tableRef
        index = handle.index
        gc = handle.gc
        failureCounts = handle.failureCounts
        durable = handle.durable
        ssi = handle.ssi
        ssiRef = handle.ssiRef
        live = handle.live
        liveRef = handle.liveRef
        gcRef = handle.gcRef
        owners = nil
    }

    deinit {
        guard let owners else { return }
        owners.deinitialize(count: Self.ownerCount)
        owners.deallocate()
    }

    /// Owner `i` of this handle (nil in an owner), for tests.
    func owner(at i: Int) -> Database? { owners?[i] }

    /// The instance a transaction begun on `thread` (its ``ThreadStripe`` index) holds: that thread's owner (see
    /// `owners`), retained once by the caller's copy.
    @inline(__always)
    func transactionOwner(thread: Int) -> Database {
        guard let owners else { return self }
        return owners[thread & (Self.ownerCount - 1)]
    }

    /// A new transaction on the current thread, holding that thread's owner.
    @inline(__always)
    func newTransaction(_ isolation: IsolationLevel, readOnly: Bool, deferrable: Bool = false) -> Transaction {
        let thread = ThreadStripe.current()  // once: it picks the owner and is the transaction's `beginThread`
        return Transaction(
            database: transactionOwner(thread: thread), thread: thread, isolation: isolation, readOnly: readOnly,
            deferrable: deferrable)
    }

    var limits: Limits { configuration.limits }

    /// Begins a transaction. Prefer `transaction {}`, which always ends it. A transaction that is dropped without
    /// commit or rollback is rolled back when the handle is deinitialized.
    ///
    /// Inlinable around the synchronous `makeTransaction`: a caller that knows it holds a `Database` begins with a
    /// plain call, not an async call.
    @inlinable
    nonisolated(nonsending) public func begin(_ isolation: IsolationLevel, readOnly: Bool) async throws -> Transaction {
        makeTransaction(isolation, readOnly: readOnly, deferrable: false)
    }

    /// The transaction object of a begin, built in a synchronous function: `begin` stays a plain call (with the
    /// initializer inlined into it, the optimizer specialized the async `begin` behind a thunk that allocated an
    /// async frame per begin).
    @inline(never) @usableFromInline
    func makeTransaction(_ isolation: IsolationLevel, readOnly: Bool, deferrable: Bool) -> Transaction {
        newTransaction(isolation, readOnly: readOnly, deferrable: deferrable)
    }

    /// Begins a transaction; with `deferrable` (only meaningful for a `.serializable` read-only transaction, as in
    /// PostgreSQL; ignored otherwise) its first read suspends until a safe snapshot is available, after which it
    /// runs without SSI tracking and can never fail with `40001`.
    ///
    /// ```swift
    /// let report = try await db.begin(.serializable, readOnly: true, deferrable: true)
    /// let rows = try await report.scan(prefix: "orders/")   // may wait for concurrent writers first
    /// try await report.commit()
    /// ```
    nonisolated(nonsending) public func begin(_ isolation: IsolationLevel, readOnly: Bool, deferrable: Bool)
        async throws
        -> Transaction
    {
        makeTransaction(isolation, readOnly: readOnly, deferrable: deferrable)
    }

    // MARK: Chains

    /// The chain of `key`, creating (and indexing) it if absent.
    ///
    /// A new chain is inserted in the scan index and published there *before* it is stored in the directory, both
    /// under the index's writer lock (which serializes chain creation). Why: once stored, another writer finds the
    /// chain with a lock-free load and may write and commit the key at once; a scan whose snapshot includes that
    /// commit must find the key in the index. The publication happens before the store, the store before that
    /// writer's load, its commit before the scan's snapshot and the snapshot before the scan's load of the index,
    /// so the scan's load sees the version with the key (or a later one). (Storing first and indexing afterwards
    /// left a window where a committed key was missing from a scan.) Lock order: index writer lock → the directory
    /// map's lock (DESIGN.md).
    func chainForWriting(_ key: Bytes) -> KeyChain {
        if let c = directory.load(key) { return c }
        return index.withWriterLock { idx in
            if let c = directory.load(key) { return c }
            let chain = KeyChain.make(key: key)
            idx.insert(chain.key, chain)  // (a long key then shares the chain's copy)
            let (stored, loaded) = directory.loadOrStore(key, chain)
            // Every creator of a chain holds the writer lock, so `loaded` is false; if a chain appeared by another
            // path, index that one instead.
            if loaded { idx.insert(stored.key, stored) }
            return stored
        }
    }

    /// Whether the scan index's writer lock is held right now, by any thread. For the regression test of
    /// ``chainForWriting(_:)``'s critical section (a directory probe asks it while the chain is being stored).
    package var scanIndexIsLockedForTesting: Bool { index.writerLockIsHeld }

    /// What transaction `txid` reads at `key`; see `ChainState.read`. `snapshot` nil means "the newest published
    /// commit, read under the chain's lock". `chain`: the key's chain as the scan index had it (a hint that saves
    /// the directory lookup; if it was retired meanwhile, the directory is asked).
    func read(_ key: Bytes, txid: UInt64, snapshot: UInt64?, dirty: Bool, chain hint: KeyChain? = nil) -> Bytes? {
        if let hint {
            let result: Bytes?? = hint.state.withLock { s in
                if s.retired { return nil }
                return .some(s.read(txid: txid, snapshot: snapshot ?? oracle.latest(), dirty: dirty))
            }
            if let result { return result }
        }
        while true {
            guard let chain = directory.load(key) else { return nil }
            let result: Bytes?? = chain.state.withLock { s in
                if s.retired { return nil }
                return .some(s.read(txid: txid, snapshot: snapshot ?? oracle.latest(), dirty: dirty))
            }
            if let result { return result }
            forget(retired: chain)
        }
    }

    /// The committed value of `key` visible at `snapshot` (nil: the newest published commit), read without any
    /// lock or reference count: the chain borrowed from the ``ChainTable`` and its version list walked, both inside
    /// one epoch of the scan index's reclaimer. For a reader with no pending write on the key (the caller checks).
    /// Returns the value (nil: absent or deleted) and its commit sequence number (0 when absent), or `.none` when
    /// the caller must take the locked path (``read(_:txid:snapshot:dirty:chain:)``): another directory, a retired
    /// chain, or no version at or below an unregistered snapshot.
    ///
    /// Why it is right: a registered snapshot keeps every version it can see (GC's horizon is at most the oldest
    /// registered snapshot), so a walk that finds nothing at or below it means "absent". Without a registration
    /// (`snapshot` nil: `published` is read here), GC may meanwhile cut versions with a horizon above that value;
    /// a cut removes a suffix of the list, older than a version at or below the horizon that it keeps, so a walk
    /// that finds a version found the newest one at or below the value read, and one that finds nothing may have
    /// been cut under it: then the locked read decides. A retired chain was replaced (or is being removed), so
    /// the directory is asked again there. A chain missing from the directory has no version any snapshot taken
    /// before the lookup can see (a writer stores the chain before it can commit to it).
    @inline(__always)
    func readCommitted(_ key: Bytes, snapshot: UInt64?) -> (value: Bytes?, version: UInt64)? {
        guard let tableRef else { return nil }
        return index.withEpoch { () -> (value: Bytes?, version: UInt64)? in
            guard let chain = tableRef._withUnsafeGuaranteedRef({ $0.borrow(key) }) else { return (nil, 0) }
            let at = snapshot ?? oracle.latest()
            switch chain._withUnsafeGuaranteedRef({ $0.committedRead(at: at) }) {
            case .found(let value, let commitTS): return (value, value == nil ? 0 : commitTS)
            case .notFound: return snapshot == nil ? nil : (nil, 0)
            case .retired: return nil
            }
        }
    }

    /// What a reader with no pending write on `key` sees at its registered `snapshot`: the lock-free committed read,
    /// or the locked one when that cannot decide (a retired chain, another directory). `chain`: the index's hint.
    @inline(__always)
    func readAtSnapshot(_ key: Bytes, _ snapshot: UInt64, txid: UInt64, chain: KeyChain? = nil) -> Bytes? {
        if let found = readCommitted(key, snapshot: snapshot) { return found.value }
        return read(key, txid: txid, snapshot: snapshot, dirty: false, chain: chain)
    }

    /// Helps garbage collection finish removing a retired chain from the directory (so that a caller that found
    /// it does not spin until GC gets there). GC itself fixes the index afterwards.
    func forget(retired chain: KeyChain) {
        directory.remove(chain)
    }

    /// Removes a retired chain from the directory and then, if no new chain for the key appeared, from the index.
    func remove(retired chain: KeyChain) {
        directory.remove(chain)
        index.withWriterLock { idx in
            if directory.load(chain.key) == nil { idx.remove(chain.key) }
        }
    }

}

/// Counters of failures by cause (relaxed atomics: statistics, not synchronization).
final class FailureCounters: Sendable {
    let serialization = Atomic<Int>(0)
    let deadlock = Atomic<Int>(0)
    let lockNotAvailable = Atomic<Int>(0)

    func count(_ code: IsoKVError.Code) {
        switch code {
        case .serializationFailure: serialization.wrappingAdd(1, ordering: .relaxed)
        case .deadlockDetected: deadlock.wrappingAdd(1, ordering: .relaxed)
        case .lockNotAvailable: lockNotAvailable.wrappingAdd(1, ordering: .relaxed)
        default: break
        }
    }
}

/// The lock-wait hook of ``LockWaitObservable`` (declared in IsoKVCore, so that backend-independent code such as
/// `IsoKVConformance` can use it): tests wait for a transaction to be queued on a row lock instead of sleeping.
@_spi(Testing)
extension Database: LockWaitObservable {
    nonisolated(nonsending) public func waitUntilWaiting(_ transaction: TransactionID, on key: Bytes) async {
        await lockManager.waitUntilWaiting(transaction.rawValue, on: key)
    }

    /// How many ``waitUntilWaiting(_:on:)`` observations are pending: for the test that a cancelled one leaves
    /// nothing behind.
    package var lockWaitObserversForTesting: Int { lockManager.graph.withLock { $0.observers.count } }
}
