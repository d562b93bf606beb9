import IsoKV
import IsoKVCore

/// The embedded engine has every capability: commit numbers are versions (`IsoKV-Revision` is exact), a storage
/// failure is fail-stop, `close()` flushes the log, and `statistics()` feeds `/metrics`.
extension Database: ServerBackend, DeferrableTransactions {
    public var backendName: String { "embedded" }

    nonisolated(nonsending) public func closeForShutdown() async { await close() }

    public func startingRevision() -> UInt64? { statistics().lastCommit }

    public var isFailStop: Bool { true }

    public func metricsSample() -> BackendMetricsSample? {
        let s = statistics()
        let a = s.aborts
        let abortHelp = "aborts (40001, 40P01) and failed lock requests (55P03) by cause, from the engine"
        var sample = BackendMetricsSample()
        for (cause, n) in [
            ("first_updater_wins", a.firstUpdaterWins), ("rw_conflict_on_read", a.rwConflictOnRead),
            ("rw_conflict_on_write", a.rwConflictOnWrite), ("canceled_pivot", a.canceledPivots),
            ("deadlock", a.deadlocks), ("lock_not_available", a.lockNotAvailable)
        ] {
            sample.counters.append(.init("isokv_aborts_total", help: abortHelp, labels: [("cause", cause)], n))
        }
        sample.counters += [
            .init(
                "isokv_lock_waits_total",
                help: "row-lock requests that waited for a conflicting holder, from the engine",
                s.lockWaits.waits),
            .init(
                "isokv_lock_wait_microseconds_total", help: "time spent in row-lock waits that ended, from the engine",
                s.lockWaits.waitNanoseconds / 1000)
        ]
        if let wal = s.wal {
            sample.counters += [
                .init("isokv_wal_appends_total", help: "WAL records appended", Int(wal.appends)),
                .init("isokv_wal_batches_total", help: "WAL write batches (group commits)", Int(wal.batches)),
                .init("isokv_wal_fsyncs_total", help: "fdatasync calls on WAL segments", Int(wal.syncs)),
                .init("isokv_wal_bytes_written_total", help: "bytes written to WAL segments", Int(wal.bytesWritten))
            ]
            sample.gauges.append(
                .init(
                    "isokv_wal_group_commit_batch_size", help: "WAL records per write batch since open (group commit)",
                    wal.batches == 0 ? 0 : Double(wal.appends) / Double(wal.batches)))
        }
        sample.gauges += [
            .init(
                "isokv_ssi_active_transactions", help: "tracked serializable transactions running",
                Double(s.serializable.active)),
            .init(
                "isokv_deferrable_waiting", help: "deferrable transactions waiting for a safe snapshot",
                Double(s.serializable.deferredWaiting)),
            .init(
                "isokv_keys", help: "keys in the scan index (deleted keys not yet collected included)",
                Double(s.indexedKeys)),
            .init("isokv_versions", help: "committed versions retained", Double(s.versions))
        ]
        return sample
    }
}

extension IsoKV.Transaction: CommitVersionReporting {
    nonisolated(nonsending) public func commitReportingVersion() async throws -> UInt64? {
        try await commitReturningVersion()
    }
}
