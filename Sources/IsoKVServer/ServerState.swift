import IsoKVCore
import Synchronization

/// What every route shares: the store (any `KeyValueStore`) and its optional capabilities, the limits, the open transactions and cursors, the metrics, and the
/// server's lifecycle flags. Immutable references; the mutable parts are atomics or behind their own locks.
final class ServerState: Sendable {
    /// The store, used through the contract only (named `db` for brevity).
    let db: any KeyValueStore
    /// The store's optional server capabilities (nil: the contract alone).
    let backend: (any ServerBackend)?
    let configuration: ServerConfiguration
    let registry: TransactionRegistry
    let metrics: ServerMetrics
    /// The highest commit number the server has seen (its own commits' and the versions it read); see
    /// ``revision``.
    private let observedRevision = Atomic<UInt64>(0)
    /// Set when a commit failed with `58030`: the store is fail-stop, `/readyz` answers 503.
    private let storageFailed = Atomic<Bool>(false)

    var limits: ServerLimits { configuration.limits }

    init(db: any KeyValueStore, configuration: ServerConfiguration) {
        self.db = db
        self.backend = db as? any ServerBackend
        self.configuration = configuration
        self.metrics = ServerMetrics()
        self.registry = TransactionRegistry(limits: configuration.limits, metrics: metrics)
        // The engine: one O(keys) statistics walk at startup, the last commit recovered (durable) or made so far.
        observedRevision.store(backend?.startingRevision() ?? 0, ordering: .relaxed)
    }

    /// A short name of the store for logs (`embedded`, `postgresql`, or the type's name).
    var backendName: String { backend?.backendName ?? String(describing: type(of: db)) }

    /// `IsoKV-Revision`: the largest version (commit number) the server has made or read. On the engine, every
    /// commit numbered at or below it is visible to any read that starts now (it is never above the published
    /// commit; commits of other requests still in flight may be newer). On a store whose versions are not commit
    /// numbers (PostgreSQL's come from a sequence at write time) it only orders this server's observations.
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

    /// Notes a `58030` seen anywhere, when the store is fail-stop (``ServerBackend/isFailStop``).
    func noteError(_ error: any Error) {
        guard backend?.isFailStop == true else { return }
        if let e = error as? IsoKVError, e.code == .storageFailure { storageFailed.store(true, ordering: .relaxed) }
        if let e = error as? ServerError, e.code == .storageFailure { storageFailed.store(true, ordering: .relaxed) }
    }

    /// Ready: not draining and the store has not failed.
    var isReady: Bool { !registry.isDraining && !storageFailed.load(ordering: .relaxed) }
    var hasStorageFailed: Bool { storageFailed.load(ordering: .relaxed) }
}
