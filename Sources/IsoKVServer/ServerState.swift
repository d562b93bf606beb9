import IsoKV
import IsoKVCore
import Synchronization

/// What every route shares: the database, the limits, the open transactions and cursors, the metrics, and the
/// server's lifecycle flags. Immutable references; the mutable parts are atomics or behind their own locks.
final class ServerState: Sendable {
    let db: Database
    let configuration: ServerConfiguration
    let registry: TransactionRegistry
    let metrics: ServerMetrics
    /// The highest commit number the server has seen (its own commits' and the versions it read); see
    /// ``revision``.
    private let observedRevision = Atomic<UInt64>(0)
    /// Set when a commit failed with `58030`: the store is fail-stop, `/readyz` answers 503.
    private let storageFailed = Atomic<Bool>(false)

    var limits: ServerLimits { configuration.limits }

    init(db: Database, configuration: ServerConfiguration) {
        self.db = db
        self.configuration = configuration
        self.metrics = ServerMetrics()
        self.registry = TransactionRegistry(limits: configuration.limits, metrics: metrics)
        // One O(keys) statistics walk at startup: the last commit recovered (durable) or made so far.
        observedRevision.store(db.statistics().lastCommit, ordering: .relaxed)
    }

    /// A commit number such that every commit numbered at or below it is visible to any read that starts now
    /// (`IsoKV-Revision`). It is the largest commit number the server has made or read, which is never above the
    /// engine's published commit; commits of other requests still in flight may be newer.
    var revision: UInt64 { observedRevision.load(ordering: .acquiring) }

    /// Records a commit number made or read.
    func observe(_ version: UInt64?) {
        guard let version else { return }
        var current = observedRevision.load(ordering: .relaxed)
        while version > current {
            let (exchanged, original) = observedRevision.compareExchange(
                expected: current, desired: version,
                ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
    }

    /// Notes a `58030` seen anywhere (fail-stop store).
    func noteError(_ error: any Error) {
        if let e = error as? IsoKVError, e.code == .storageFailure { storageFailed.store(true, ordering: .relaxed) }
        if let e = error as? ServerError, e.code == .storageFailure { storageFailed.store(true, ordering: .relaxed) }
    }

    /// Ready: not draining and the store has not failed.
    var isReady: Bool { !registry.isDraining && !storageFailed.load(ordering: .relaxed) }
    var hasStorageFailed: Bool { storageFailed.load(ordering: .relaxed) }
}
