import IsoKVCore
import IsoKVSync
import Dispatch
import Foundation
import IsoKVStorage
import Synchronization

// The durable database: the MVCC engine over the write-ahead log of IsoKVStorage (DESIGN.md, "Durable database").
//
// Entry points, by purpose:
// - open/close: `Database.open(path:options:)` (lock, recover, serve), `close()`.
// - commit: `Transaction.commitDurably(_:)`, called from the hook in `commitReturningVersion` (Transaction+Commit).
// - checkpoints: `checkpoint()` on demand, `DurableStore.afterCommit(_:)` in the background by WAL size.
// - backup and inspection: `backup(to:)` (in process, from a snapshot), `Database.backup(directory:to:)` (a store
//   open in another process, read without its lock), `Database.inspect(path:)` (engine-level `isokv check`).
//
// Lock order: `Oracle.commitLock` → `WriteAheadLog.shared` (the log's leaf lock, taken by `enqueue`) and
// `commitLock` → a chain's lock (installs). `DurableStore.state` is a leaf taken alone. No lock is held across an
// await; the fsync wait suspends (`waitDurable`), and the log's I/O runs on its own threads.

extension Database {
    /// What an acknowledged commit survives; see the table in ``IsoKVStorage/DurabilityMode``.
    public typealias Durability = DurabilityMode

    /// Options of ``open(path:options:)``.
    public struct OpenOptions: Sendable {
        /// When a commit is acknowledged (default `.fsync`: after its record is on stable storage).
        public var durability: Durability
        /// Write a checkpoint in the background once the WAL holds this many bytes (default 64 MiB; nil: only
        /// ``Database/checkpoint()``). Recovery time and disk use grow with the WAL between checkpoints.
        public var checkpointWALBytes: Int64?
        /// Size at which a WAL segment is closed and the next one created (default 64 MiB, minimum 4 KiB). Only
        /// closed segments are deleted by checkpoints.
        public var segmentBytes: Int
        /// Limits and lock timeout, as for ``Database/inMemory(_:)``.
        public var configuration: Configuration
        /// Failpoints for tests (nil: none).
        public var faults: FaultHook?

        public init(durability: Durability = .fsync, checkpointWALBytes: Int64? = 64 << 20,
                    segmentBytes: Int = 64 << 20, configuration: Configuration = Configuration(),
                    faults: FaultHook? = nil) {
            self.durability = durability
            self.checkpointWALBytes = checkpointWALBytes
            self.segmentBytes = segmentBytes
            self.configuration = configuration
            self.faults = faults
        }
    }

    /// Opens (creating it if needed) the durable database in directory `path`: takes the directory lock, recovers
    /// the latest checkpoint plus the WAL after it (every key keeps its version, and commit numbers continue after
    /// the last recovered one, so versions and ETags stay monotonic across restarts), then serves.
    ///
    /// ```swift
    /// let db = try await Database.open(path: "data")                       // .fsync by default
    /// try await db.transaction(.snapshot) { tx in try await tx.put("k", "v") }   // returns once durable
    /// await db.close()
    /// ```
    ///
    /// Throws ``IsoKVStorage/StorageError``: `.directoryLocked` (another open store holds the directory),
    /// `.corruptSegment`/`.corruptCheckpoint` (file and offset of damage that is not a torn tail), `.missingSegment`,
    /// `.unsupportedFormat`, `.io`. A torn tail left by a crash is cut silently, as it holds no acknowledged commit.
    /// Call ``close()`` when done: the log's threads and the directory lock live until then.
    public static func open(path: String, options: OpenOptions = OpenOptions()) async throws -> Database {
        let walOptions = WALOptions(durability: options.durability, segmentBytes: options.segmentBytes,
                                    faults: options.faults)
        let (log, recovered) = try await WriteAheadLog.open(directory: path, options: walOptions)
        let durable = DurableStore(path: path, log: log, options: options)
        let db = Database(configuration: options.configuration, directory: ReadMostlyDirectory(), durable: durable)
        db.load(recovered)
        return db
    }

    /// Installs a recovered state into an empty database: one committed version per live key, tagged with its
    /// original version (commit number); the commit counter continues after the last recovered commit.
    func load(_ recovered: RecoveredState) {
        for (key, write) in Self.replay(recovered) {
            guard let value = write.value else { continue }
            let chain = KeyChain(key: key)
            chain.state.withLock {
                $0.versions = [CommittedVersion(value: Bytes(value), commitTS: write.version, creator: 0)]
            }
            let (stored, _) = directory.loadOrStore(key, chain)
            index.withLock { $0.insert(key, stored) }
        }
        oracle.commitLock.withLock { last in
            last = recovered.lastSequence
            oracle.published.store(recovered.lastSequence, ordering: .releasing)
        }
    }

    /// The newest write of every key: checkpoint entries, then the commits after it in log order.
    static func replay(_ recovered: RecoveredState) -> [Bytes: KeyWrite] {
        var latest: [Bytes: KeyWrite] = [:]
        latest.reserveCapacity(recovered.checkpointEntries.count)
        for entry in recovered.checkpointEntries { latest[Bytes(entry.key)] = entry }
        for record in recovered.commits {
            for write in record.writes { latest[Bytes(write.key)] = write }
        }
        return latest
    }

    /// Writes everything acknowledged (and, in `.unsafeNoSync`, everything queued), waits for a running
    /// checkpoint, stops the log's threads and releases the directory lock. Later commits throw `57P01`; reads
    /// keep working on the in-memory state. Does nothing for an in-memory database. Call once.
    public func close() async {
        guard let durable else { return }
        await durable.close()
    }

    /// Writes a checkpoint now, from a registered snapshot (readers and writers keep running), then deletes the
    /// WAL segments it covers. Throws ``IsoKVStorage/StorageError`` (`.checkpointInProgress` if the background
    /// checkpoint is running, `.logFailed`, `.closed`, `.io`). Does nothing for an in-memory database.
    ///
    /// ```swift
    /// try await db.checkpoint()
    /// ```
    public func checkpoint() async throws {
        guard let durable else { return }
        try await durable.writeCheckpoint(self)
    }

    /// The WAL counters (appends, batches, fsyncs, checkpoints…); nil for an in-memory database.
    public var walStatistics: WALStatistics? { durable?.log.statistics }

    /// An online, consistent copy of this database into the new directory `destination`, taken from a registered
    /// snapshot while readers and writers keep running: a checkpoint file at the snapshot's commit number plus an
    /// empty WAL, all fsynced. `Database.open(path: destination)` opens it. Returns the commit number copied.
    ///
    /// ```swift
    /// let copied = try await db.backup(to: "/backups/data-2026-11-22")
    /// ```
    ///
    /// Throws ``IsoKVStorage/StorageError`` (`.io(operation: "backup", …, EEXIST)` when `destination` already holds
    /// a store).
    @discardableResult
    public func backup(to destination: String) async throws -> UInt64 {
        let (snapshot, chains) = registerSnapshotForCopy()
        defer { releaseSnapshotForCopy(snapshot) }
        try await Self.writeBackup(destination, sequence: snapshot,
                                   entries: SnapshotEntries(chains: chains, snapshot: snapshot))
        return snapshot
    }

    /// Takes a consistent copy of the store in `directory` — which may be open in another process (its lock is
    /// not taken: the files are read as `isokv check` reads them) — into the new directory `destination`.
    ///
    /// The copy holds the latest checkpoint plus every whole record of the WAL when it was read: a prefix of the
    /// commit history (a batch being written may be cut at a record boundary), so never half a transaction. It
    /// may include commits the running store has written but not yet acknowledged. A concurrent checkpoint that
    /// deletes a segment while it is read makes the read retry (up to 10 times, 5 ms apart).
    public static func backup(directory: String, to destination: String) async throws -> DirectorySummary {
        let recovered = try await readConsistently(directory)
        let latest = replay(recovered)
        let entries = latest.values.filter { $0.value != nil }
        try await writeBackup(destination, sequence: recovered.lastSequence, entries: AsyncEntries(entries))
        return DirectorySummary(recovered, liveKeys: entries.count)
    }

    /// Verifies a data directory without modifying it or taking its lock and summarizes it at the engine's level
    /// (live keys, last commit number), as `isokv check` prints. Throws the ``IsoKVStorage/StorageError`` an open
    /// would throw. Blocking (file I/O): call it from a thread, not from a cooperative task.
    public static func inspect(path: String) throws -> DirectorySummary {
        let recovered = try WriteAheadLog.check(directory: path)
        let live = replay(recovered).values.reduce(0) { $0 + ($1.value == nil ? 0 : 1) }
        return DirectorySummary(recovered, liveKeys: live)
    }

    /// What ``inspect(path:)`` and ``backup(directory:to:)`` report about a data directory.
    public struct DirectorySummary: Sendable, Hashable {
        /// Keys with a value after recovery.
        public var liveKeys: Int
        /// The last commit number recovered (the next commit gets a larger one).
        public var lastCommit: UInt64
        /// The commit number the checkpoint covers (0: no checkpoint).
        public var checkpointSequence: UInt64
        /// Commit records replayed after the checkpoint.
        public var commitsAfterCheckpoint: Int

        init(_ recovered: RecoveredState, liveKeys: Int) {
            self.liveKeys = liveKeys
            self.lastCommit = recovered.lastSequence
            self.checkpointSequence = recovered.checkpointSequence
            self.commitsAfterCheckpoint = recovered.commits.count
        }
    }

    /// Reads `directory` with `WriteAheadLog.check` on a dispatch thread, retrying when a concurrent checkpoint
    /// of a live store deleted a file between the listing and the read.
    static func readConsistently(_ directory: String) async throws -> RecoveredState {
        var attempt = 0
        while true {
            let result: Result<RecoveredState, StorageError> = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(returning: Result { () throws(StorageError) in
                        try WriteAheadLog.check(directory: directory)
                    })
                }
            }
            switch result {
            case .success(let state): return state
            case .failure(let error):
                // A file deleted or being rotated under the read (a live store's checkpoint or flusher) shows as
                // an I/O error, a missing or a short segment: read again. Real damage persists and is thrown.
                attempt += 1
                switch error {
                case .io, .missingSegment, .corruptSegment: guard attempt < 10 else { throw error }
                default: throw error
                }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// Creates `destination` as a store holding exactly `entries` at commit `sequence`: a fresh WAL (one empty,
    /// fsynced segment), then a checkpoint (fsynced, renamed, directory fsynced).
    static func writeBackup<Entries: AsyncSequence>(_ destination: String, sequence: UInt64, entries: Entries)
        async throws where Entries.Element == KeyWrite
    {
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: destination),
           existing.contains(where: { $0 == DataDirectory.checkpointName || $0.hasPrefix("wal-") }) {
            throw StorageError.io(operation: "backup", file: destination, errno: 17)  // EEXIST
        }
        let (log, _) = try await WriteAheadLog.open(directory: destination, options: WALOptions(durability: .fsync))
        do {
            try await log.checkpoint(sequence: sequence, entries: entries)
        } catch {
            await log.close()
            throw error
        }
        await log.close()
    }

    /// Registers a snapshot of the newest published commit (so GC keeps every version it reads) and lists the
    /// chains that may hold a version visible to it. Every commit ≤ the snapshot was installed in a chain that was
    /// in the directory before the registration, and GC cannot retire a chain holding a version the snapshot
    /// sees, so the list (taken after the registration) covers the snapshot.
    func registerSnapshotForCopy() -> (UInt64, [KeyChain]) {
        let snapshot = oracle.registerSnapshot(stripe: 0)
        var chains: [KeyChain] = []
        directory.forEach { _, chain in
            chains.append(chain)
            return true
        }
        return (snapshot, chains)
    }

    func releaseSnapshotForCopy(_ snapshot: UInt64) {
        let advanced = oracle.unregisterSnapshot(snapshot, stripe: 0)
        gc.afterTransaction(touched: [], horizonAdvanced: advanced, in: self)
    }
}

/// The committed state at a registered snapshot, read chain by chain as the checkpoint writer pulls it (no copy
/// of the values is made up front). Tombstones and keys without a visible version are skipped.
struct SnapshotEntries: AsyncSequence, Sendable {
    typealias Element = KeyWrite
    let chains: [KeyChain]
    let snapshot: UInt64

    struct AsyncIterator: AsyncIteratorProtocol {
        let chains: [KeyChain]
        let snapshot: UInt64
        var index = 0

        mutating func next() async -> KeyWrite? {
            while index < chains.count {
                let chain = chains[index]
                index += 1
                let visible = chain.state.withLock { $0.visible(at: snapshot) }
                if let visible, let value = visible.value {
                    return KeyWrite(key: chain.key.bytes, value: value.bytes, version: visible.commitTS)
                }
            }
            return nil
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chains: chains, snapshot: snapshot) }
}

/// The durable half of a ``Database`` opened with `open(path:)`: its log and its background checkpoints.
package final class DurableStore: Sendable {
    /// The data directory.
    let path: String
    /// The write-ahead log (owns its flusher and notifier threads until `close`).
    let log: WriteAheadLog
    let options: Database.OpenOptions
    /// Commits since open; the WAL size is looked at every `checkpointCheckInterval` commits (not at each, to keep
    /// the log's lock out of the commit fast path). Relaxed: a counter, not synchronization.
    let commits = Atomic<UInt64>(0)
    static let checkpointCheckInterval: UInt64 = 16
    /// Leaf lock; see ``CheckpointState``.
    let state = Locked(CheckpointState())

    /// Background checkpoint bookkeeping, guarded by `state`.
    struct CheckpointState {
        /// A background checkpoint is running (at most one; set by `afterCommit`, cleared by its task).
        var running = false
        /// The last background checkpoint task (finished or not), for `close` to wait on.
        var task: Task<Void, Never>?
        /// Set by `close`: no new background checkpoint starts.
        var closing = false
        /// The error of the last failed background checkpoint (the next one over the threshold retries).
        var lastError: String?
    }

    init(path: String, log: WriteAheadLog, options: Database.OpenOptions) {
        self.path = path
        self.log = log
        self.options = options
    }

    /// Called after each durable commit: starts a background checkpoint when the WAL outgrew the threshold.
    func afterCommit(_ db: Database) {
        guard let threshold = options.checkpointWALBytes else { return }
        let n = commits.wrappingAdd(1, ordering: .relaxed).newValue
        guard n % Self.checkpointCheckInterval == 0, log.walBytes >= threshold else { return }
        state.withLock { s in
            guard !s.running, !s.closing else { return }
            s.running = true
            // Detached: the checkpoint must not run on (and inherit the isolation of) the committer's executor.
            // Its file I/O runs on the log's own dispatch queue; this task only reads chains.
            s.task = Task.detached(priority: .utility) { [self] in
                do {
                    try await self.writeCheckpoint(db)
                    self.state.withLock { $0.lastError = nil; $0.running = false }
                } catch {
                    self.state.withLock { $0.lastError = "\(error)"; $0.running = false }
                }
            }
        }
    }

    /// A checkpoint from a registered snapshot: versions it needs stay (GC respects the snapshot) while commits
    /// continue; the log deletes the segments it covers.
    func writeCheckpoint(_ db: Database) async throws {
        let (snapshot, chains) = db.registerSnapshotForCopy()
        defer { db.releaseSnapshotForCopy(snapshot) }
        try await log.checkpoint(sequence: snapshot, entries: SnapshotEntries(chains: chains, snapshot: snapshot))
    }

    func close() async {
        let task = state.withLock { s -> Task<Void, Never>? in
            s.closing = true
            return s.task
        }
        await task?.value
        await log.close()
    }

    /// The error a commit throws for a log error.
    static func commitError(_ error: StorageError) -> IsoKVError {
        switch error {
        case .closed:
            return IsoKVError(.databaseClosed, "the database is closed")
        case .recordTooLarge(let bytes, let limit):
            return IsoKVError(.limitExceeded, "commit record of \(bytes) bytes exceeds the WAL limit of \(limit) bytes")
        default:
            return IsoKVError(.storageFailure, "commit is not durable and the database refuses further commits "
                + "until it is reopened: \(error)")
        }
    }
}

extension Oracle {
    /// Publishes every commit up to `ts` (durable database): `published = max(published, ts)`, atomically.
    ///
    /// Safe out of the commit lock because the log acknowledges records in log order = commit order: when the
    /// record of `ts` is durable, so is every record before it, and all of them were installed under the commit
    /// lock before `ts` was assigned. So `published` still only grows and every commit ≤ `published` is installed
    /// and durable; a committer whose own acknowledgement comes later finds its `ts` already published.
    func publish(atLeast ts: UInt64) {
        var current = published.load(ordering: .relaxed)
        while current < ts {
            let (exchanged, original) = published.compareExchange(
                expected: current, desired: ts, successOrdering: .releasing, failureOrdering: .relaxed)
            if exchanged { return }
            current = original
        }
    }
}

extension Transaction {
    /// Steps 3–4 of the commit protocol for a durable database (DESIGN.md, "Durable database"):
    ///
    /// 1. Outside any global lock: collect the pending writes (stable: this transaction holds their exclusive
    ///    row locks).
    /// 2. Under `Oracle.commitLock`: `ts = last + 1`; enqueue the record (all writes, version `ts`) in the log —
    ///    so log order = `ts` order; install the writes as versions `ts` (invisible: every snapshot is
    ///    `≤ published < ts`); `last = ts`. An enqueue error (failed or closed log) leaves nothing installed.
    /// 3. Outside the lock, suspended: wait until the record is durable under the mode (group commit: the log's
    ///    flusher writes and fsyncs everything queued at once and resumes all waiters).
    /// 4. Publish `ts` (`published = max(published, ts)`): the writes become visible at once.
    /// The caller then releases the row locks (step 5), so no other writer touches these rows before they are
    /// durable and visible. If step 3 fails, the versions are removed again (never published) and the
    /// transaction ends failed with `58030`; the log refuses every later commit.
    nonisolated(nonsending) func commitDurably(_ durable: DurableStore,
                                                ssi: SerializableXactHandle? = nil) async throws -> UInt64? {
        let pointKeys = ssi == nil ? [] : (serializable?.pointKeys ?? [])
        let txid = self.txid
        let chains = writeOrder
        var writes: [KeyWrite] = []
        writes.reserveCapacity(chains.count)
        for chain in chains {
            let pending = chain.state.withLock { s -> PendingWrite? in s.pending?.owner == txid ? s.pending : nil }
            if let pending {
                writes.append(KeyWrite(key: chain.key.bytes, value: pending.value?.bytes, version: 0))
            }
        }
        // Every write was undone by rollbacks to savepoints: nothing to log or publish.
        if writes.isEmpty {
            if let ssi { db.ssi.finishPrepared(ssi, pointKeys: pointKeys, publish: {}) }
            return nil
        }
        let oracle = db.oracle
        let log = durable.log
        let enqueued = oracle.commitLock.withLock { last -> Result<(UInt64, DurabilityTicket), StorageError> in
            let ts = last + 1
            for i in writes.indices { writes[i].version = ts }
            let ticket: DurabilityTicket
            do throws(StorageError) {
                ticket = try log.enqueue(CommitRecord(sequence: ts, writes: writes))
            } catch {
                return .failure(error)
            }
            for chain in chains {
                chain.state.withLock { $0.installLocked(owner: txid, commitTS: ts) }
            }
            last = ts
            return .success((ts, ticket))
        }
        let ts: UInt64
        let ticket: DurabilityTicket
        switch enqueued {
        case .success(let value): (ts, ticket) = value
        case .failure(let error):
            let e = DurableStore.commitError(error)
            endTransaction(.failed(e))
            throw e
        }
        do {
            try await log.waitDurable(ticket)
        } catch {
            // Not durable, so never visible: take the versions back out (nobody else can have written these rows,
            // whose exclusive locks we hold; GC keeps them, as ts > published ≥ horizon).
            for chain in chains {
                chain.state.withLock { s in s.versions.removeAll { $0.commitTS == ts } }
            }
            let e = DurableStore.commitError(error as? StorageError ?? .logFailed(cause: "\(error)"))
            endTransaction(.failed(e))
            throw e
        }
        if let ssi {
            db.ssi.finishPrepared(ssi, pointKeys: pointKeys) { oracle.publish(atLeast: ts) }
        } else {
            oracle.publish(atLeast: ts)
        }
        return ts
    }
}
