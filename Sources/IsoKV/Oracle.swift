import IsoKVCore
import IsoKVSync
import Synchronization

/// Owns the global clocks: transaction ids, the commit sequence, and the registry of live snapshots.
///
/// Commit protocol (see ``Transaction`` commit): under `commitLock`, take `ts = published + 1`, install every
/// pending write of the transaction as a version with `commitTS = ts`, then publish `ts`. A snapshot is a published
/// sequence number `s`; it sees exactly the versions with `commitTS ≤ s`. Because versions are installed before
/// their number is published (and the chain locks order the installs before any later read), a snapshot never sees
/// part of a transaction.
final class Oracle: Sendable {
    /// The newest published commit sequence number. Stored only under `commitLock` (release), loaded anywhere
    /// (acquire). Monotonic. In a durable database it is instead advanced by `publish(atLeast:)` (an atomic max)
    /// once a commit's record is durable: then `published ≤ last`, and commits in `(published, last]` are installed
    /// but not yet durable (DESIGN.md, "Durable database").
    let published = Atomic<UInt64>(0)
    /// The next transaction id (ids start at 1). Monotonic.
    private let nextTxID = Atomic<UInt64>(1)
    /// Serializes commits: holds the last assigned commit sequence number (equal to `published` outside the lock).
    /// The durability layer's WAL append will happen inside this section, in commit order (see DESIGN.md).
    let commitLock = Locked<UInt64>(0)
    /// Live snapshots, for garbage collection, in `stripeCount` stripes so that transactions on different threads
    /// rarely touch the same lock when they begin and end. A transaction uses stripe `txid % stripeCount`.
    let snapshots: [Locked<SnapshotRegistry>] = (0..<Oracle.stripeCount).map { _ in Locked(SnapshotRegistry()) }
    static let stripeCount = 8

    func newTransactionID() -> UInt64 { nextTxID.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// The sequence number a read of "the newest committed data" uses right now.
    @inline(__always)
    func latest() -> UInt64 { published.load(ordering: .acquiring) }

    /// Takes and registers a snapshot of the newest published commit in stripe `stripe`. The read of `published`
    /// happens under the stripe's lock; see ``horizon()`` for why that makes garbage collection safe.
    func registerSnapshot(stripe: Int) -> UInt64 {
        snapshots[stripe].withLock { $0.registerLocked(latest()) }
    }

    /// Unregisters `snapshot`; returns whether its stripe's oldest snapshot moved forward (then the global horizon
    /// may have moved too, and a sweep may free versions).
    func unregisterSnapshot(_ snapshot: UInt64, stripe: Int) -> Bool {
        snapshots[stripe].withLock { $0.unregisterLocked(snapshot) }
    }

    /// The garbage-collection horizon: the oldest live snapshot, or the newest published commit if none is live.
    /// Every version older than the newest version at or below the horizon is invisible to everybody.
    ///
    /// Safe against a concurrent registration without a global lock: `published` is read first, then each stripe
    /// under its lock. Either the stripe's scan sees the new snapshot `s` (so the result is `≤ s`), or the scan
    /// came first, and then the registrant read `published` after this function did, so `s ≥ p ≥ result`.
    /// The horizon never decreases (new snapshots start at `published`), so a horizon computed earlier is still a
    /// safe bound later.
    func horizon() -> UInt64 {
        var h = latest()
        for stripe in snapshots {
            if let oldest = stripe.withLock({ $0.oldest }), oldest < h { h = oldest }
        }
        return h
    }

    /// Registered snapshots, all stripes.
    var liveSnapshots: Int { snapshots.reduce(0) { n, s in n + s.withLock { $0.liveCount } } }
}

/// Multiset of live snapshots with its minimum.
struct SnapshotRegistry {
    /// Snapshot → number of live readers of it (always > 0).
    private var counts: [UInt64: Int] = [:]
    /// The smallest key of `counts`, or nil when empty.
    private(set) var oldest: UInt64?

    var liveCount: Int { counts.values.reduce(0, +) }
    /// Snapshot → number of live readers (for the consistency checker).
    var registered: [UInt64: Int] { counts }

    mutating func registerLocked(_ s: UInt64) -> UInt64 {
        counts[s, default: 0] += 1
        if oldest == nil || s < oldest! { oldest = s }
        return s
    }

    mutating func unregisterLocked(_ s: UInt64) -> Bool {
        guard let n = counts[s] else { return false }
        if n > 1 { counts[s] = n - 1; return false }
        counts[s] = nil
        guard s == oldest else { return false }
        oldest = counts.keys.min()
        return true
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
