import IsoKVCore
import IsoKVStorage

// The durable database: the MVCC engine over the write-ahead log of IsoKVStorage (DESIGN.md, "Durable database").
//
// Files, by purpose:
// - Database+Open.swift: `Database.open(path:options:)` (lock, recover, serve), `close()`.
// - Transaction+Commit.swift: the one commit path; its durable steps enqueue the record and await the fsync.
// - Database+Checkpoint.swift: `checkpoint()` on demand; `DurableStore.afterCommit(_:)` in the background by WAL size.
// - Database+Backup.swift: `backup(to:)` (in process, from a snapshot), `Database.backup(directory:to:)` (a store
//   open in another process, read without its lock), `Database.inspect(path:)` (engine-level `isokv check`).
// - DurableStore.swift: the durable half of a database (its log, background checkpoints, commit error mapping).
//
// Locks: see the lock order in DESIGN.md. No lock is held across an await; the fsync wait suspends
// (`waitDurable`), and the log's I/O runs on its own threads.

extension Database {
    /// What an acknowledged commit survives; see the table in `DurabilityMode`.
    public typealias Durability = DurabilityMode

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
    /// Throws `IsoKVError`: `55006` (another open store holds the directory), `XX001` with `IsoKVError/file`
    /// and `IsoKVError/offset` (damage that is not a torn tail, or a missing segment), `0A000` (a format version
    /// this build cannot read), `58030` (a system call failed). A torn tail left by a crash is cut silently, as it holds no acknowledged commit.
    /// Call ``close()`` when done: the log's threads and the directory lock live until then.
    public static func open(path: String, options: OpenOptions = OpenOptions()) async throws -> Database {
        let walOptions = WALOptions(
            durability: options.durability, segmentBytes: options.segmentBytes,
            faults: options.faults)
        let (log, recovered) = try await mappingStorageErrors {
            try await WriteAheadLog.open(directory: path, options: walOptions)
        }
        let durable = DurableStore(path: path, log: log, options: options)
        let db = Database(configuration: options.configuration, durable: durable)
        db.load(recovered)
        return db
    }

    /// Installs a recovered state into an empty database: one committed version per live key, tagged with its
    /// original version (commit number); the commit counter continues after the last recovered commit.
    func load(_ recovered: RecoveredState) {
        for (key, write) in Self.replay(recovered) {
            guard let value = write.value else { continue }
            let chain = KeyChain.make(
                key: key, versions: [CommittedVersion(value: Bytes(value), commitTS: write.version, creator: 0)])
            let (stored, _) = directory.loadOrStore(key, chain)
            index.withWriterLock { $0.insert(stored.key, stored) }
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
}
