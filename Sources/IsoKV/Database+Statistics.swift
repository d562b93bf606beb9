import IsoKVCore
import IsoKVSync

extension Database {
    /// Everything the database counts, in one value: what it holds in memory, aborts by cause, SSI's state and,
    /// for a durable database, the write-ahead log's counters.
    ///
    /// Cost: walks every key's chain under its lock (O(keys)), takes the SSI lock and every point-lock stripe once,
    /// and reads relaxed counters; nothing waits. Call it for diagnostics, tests and metrics scrapes, not per
    /// operation. The sections are read one after the other, not as one snapshot: counters may move in between.
    ///
    /// ```swift
    /// let s = db.statistics()
    /// print(s.versions, s.aborts.firstUpdaterWins, s.serializable.pointLocks, s.wal?.syncs ?? 0)
    /// ```
    public func statistics() -> Statistics {
        var s = Statistics()
        directory.forEach { _, chain in
            chain.state.withLock { c in
                s.chains += 1
                s.versions += c.versionCount
                if c.pending != nil { s.pendingWrites += 1 }
            }
            return true
        }
        s.indexedKeys = index.count
        s.liveSnapshots = oracle.liveSnapshots
        s.lastCommit = oracle.latest()
        s.aborts = abortCounts()
        s.lockWaits = LockWaitStatistics(
            waits: lockManager.waits.load(ordering: .relaxed),
            waitNanoseconds: lockManager.waitNanoseconds.load(ordering: .relaxed))
        s.serializable = ssi.statistics()
        s.wal = durable?.log.statistics
        return s
    }

    /// What ``statistics()`` reports.
    public struct Statistics: Sendable, Hashable, Codable {
        /// Keys with a version chain (including deleted keys not yet collected).
        public var chains = 0
        /// Committed versions retained, tombstones included.
        public var versions = 0
        /// Uncommitted writes.
        public var pendingWrites = 0
        /// Keys in the scan index.
        public var indexedKeys = 0
        /// Registered snapshots (transactions and running read-committed scans).
        public var liveSnapshots = 0
        /// The newest published commit sequence number.
        public var lastCommit: UInt64 = 0
        /// Aborts (`40001`, `40P01`) and lock failures (`55P03`) by cause since the database was created.
        public var aborts = AbortStatistics()
        /// Row-lock requests that waited for a conflicting holder, and how long, since the database was created.
        public var lockWaits = LockWaitStatistics()
        /// What SSI holds now (tracked and retained serializable transactions, SIREAD locks, summaries).
        public var serializable = SerializableStatistics()
        /// The write-ahead log's counters (appends, batches, fsyncs, checkpoints); nil for an in-memory database.
        public var wal: WALStatistics?
    }

    /// The abort counters alone (relaxed loads; no lock).
    func abortCounts() -> AbortStatistics {
        var a = AbortStatistics()
        a.serializationFailures = failureCounts.serialization.load(ordering: .relaxed)
        a.rwConflictOnRead = ssi.counters.rwOnRead.load(ordering: .relaxed)
        a.rwConflictOnWrite = ssi.counters.rwOnWrite.load(ordering: .relaxed)
        a.canceledPivots = ssi.counters.doomedPivots.load(ordering: .relaxed)
        a.firstUpdaterWins = max(
            0, a.serializationFailures - a.rwConflictOnRead - a.rwConflictOnWrite - a.canceledPivots)
        a.deadlocks = failureCounts.deadlock.load(ordering: .relaxed)
        a.lockNotAvailable = failureCounts.lockNotAvailable.load(ordering: .relaxed)
        return a
    }
}
