import IsoKVCore
import IsoKVSync
import Synchronization

/// Drops versions that no live snapshot can see (see DESIGN.md, "Garbage collection").
///
/// Two triggers: at the end of each transaction, the chains it touched are pruned against the current horizon
/// (this keeps an update-heavy load flat when no old snapshot is live); chains that still hold old versions go to
/// `backlog`, which is swept whenever the oldest live snapshot ends (the horizon moves forward).
final class GarbageCollector: Sendable {
    /// Chains that may hold collectable versions once the horizon advances. Removed by a sweep when clean.
    let backlog = Locked<[ObjectIdentifier: KeyChain]>([:])
    /// `backlog.count`, stored under the backlog lock, loaded without it so that the end of a read-only
    /// transaction skips the sweep without taking any lock when there is nothing to sweep.
    private let backlogCount = Atomic<Int>(0)
    /// Whether a sweep runs (`busy`: concurrent enders do not sweep the same backlog twice) and whether another
    /// was asked for meanwhile (`again`: the running sweeper sweeps once more). Leaf lock.
    private let sweeping = Locked(SweepState())
    /// The newest horizon a sweep pass has used. Written only by the sweeper (one sweep at a time); loaded by every
    /// transaction end. Invariant: every chain in the backlog has been pruned at this horizon or a newer one — by
    /// that pass (a pass fixes its horizon before it copies the backlog), or, for a chain filed after the copy, by
    /// its filer's re-check at a fresh horizon (`prune`). So a sweep at a horizon no newer than this one can collect
    /// nothing, and a transaction end skips it: while an old snapshot stays open the horizon does not move, and
    /// every end used to walk the whole backlog, quadratic in the writes made under that snapshot.
    private let sweptHorizon = Atomic<UInt64>(0)
    /// Sweep passes run so far (for tests: a skipped sweep runs none).
    let sweepPasses = Atomic<Int>(0)

    struct SweepState {
        var busy = false
        var again = false

        /// Whether the caller starts a sweep; if one runs, records the request for it instead.
        mutating func start() -> Bool {
            if busy { again = true } else { busy = true; return true }
            return false
        }

        /// Whether the sweeper must sweep once more (a request came meanwhile); otherwise it stops.
        mutating func finishPass() -> Bool {
            if again { again = false } else { busy = false; return false }
            return true
        }
    }

    /// Prunes `chain` at `horizon`, files it in the backlog or removes it from the database when retired.
    func prune(_ chain: KeyChain, horizon: UInt64, in db: Database) -> ChainState.PruneResult {
        let result = chain.prune(horizon: horizon, reclaimer: db.index.reclaimer)
        switch result {
        case .retire: db.remove(retired: chain)
        case .keep:
            backlog.withLock { b in
                b[ObjectIdentifier(chain)] = chain
                backlogCount.store(b.count, ordering: .relaxed)
            }
            // The snapshot that held these versions may have ended between our horizon and the filing, and its
            // sweep may have looked at the backlog before the chain was in it: look again with a fresh horizon.
            let fresh = db.oracle.horizon()
            if fresh > horizon { return prune(chain, horizon: fresh, in: db) }
        case .clean: break
        }
        return result
    }

    /// Called when a transaction ends, after its locks and snapshot (`released`, if it had one) were released.
    /// Sweeps the backlog only when the horizon moved past the last pass's (`sweptHorizon`), and not when an older
    /// registration is still live (``Oracle/olderRegistrationLive(than:)``: its own end sweeps).
    func afterTransaction(touched: [KeyChain], horizonAdvanced: Bool, released: UInt64? = nil, in db: Database) {
        var sweepNeeded = horizonAdvanced && backlogCount.load(ordering: .relaxed) > 0
        if sweepNeeded, let released,
            db.oracleRef._withUnsafeGuaranteedRef({ $0.olderRegistrationLive(than: released) })
        {
            sweepNeeded = false
        }
        guard !touched.isEmpty || sweepNeeded else { return }
        let horizon = db.oracle.horizon()
        for chain in touched { _ = prune(chain, horizon: horizon, in: db) }
        if sweepNeeded && horizon > sweptHorizon.load(ordering: .acquiring) { sweep(db, horizon: horizon) }
    }

    /// Prunes every backlog chain at `horizon` (nil: the current one, computed before the backlog is copied); the
    /// clean ones leave the backlog. A horizon computed earlier is still safe (it never decreases), only possibly
    /// less up to date: the end of a transaction passes the one it just computed for its own chains, after its
    /// snapshot was released, instead of computing it twice.
    ///
    /// One sweep at a time. A sweep asked for while another runs is not dropped: it is recorded (`again`), and
    /// the running sweeper sweeps once more, at a horizon computed after the request, before it stops. (Dropping it
    /// lost a collection whenever the oldest snapshot ended while a sweep was using a horizon from before that end:
    /// once every transaction had ended, a version could stay uncollected until the next write.)
    ///
    /// `beforePruningForTesting` runs in the first pass, once its horizon is fixed (a test asks for another sweep
    /// from there).
    func sweep(_ db: Database, horizon given: UInt64? = nil, beforePruningForTesting: (() -> Void)? = nil) {
        guard sweeping.withLock({ $0.start() }) else { return }
        var horizon = given
        var hook = beforePruningForTesting
        repeat {
            sweepOnce(db, horizon: horizon, beforePruning: hook)
            horizon = nil  // a request made during the pass came later: a fresh horizon
            hook = nil
        } while sweeping.withLock({ $0.finishPass() })
    }

    private func sweepOnce(_ db: Database, horizon given: UInt64?, beforePruning: (() -> Void)?) {
        sweepPasses.add(1, ordering: .relaxed)
        // The horizon before the copy: a chain filed after the copy was re-pruned by its filer at a horizon computed
        // after this one (see `sweptHorizon`).
        let horizon = given ?? db.oracle.horizon()
        let chains = backlog.withLock { Array($0.values) }
        guard !chains.isEmpty else { return }
        if horizon > sweptHorizon.load(ordering: .relaxed) { sweptHorizon.store(horizon, ordering: .releasing) }
        beforePruning?()
        var done: [KeyChain] = []
        for chain in chains {
            let result = chain.prune(horizon: horizon, reclaimer: db.index.reclaimer)
            switch result {
            case .retire: db.remove(retired: chain); done.append(chain)
            case .clean: done.append(chain)
            case .keep: break
            }
        }
        // Re-check under the backlog lock: a commit may have added versions (and re-filed the chain) since.
        backlog.withLock { b in
            for chain in done where chain.state.withLock({ $0.needsNoCollection }) {
                b[ObjectIdentifier(chain)] = nil
            }
            backlogCount.store(b.count, ordering: .relaxed)
        }
    }
}
