import IsoKVCore
import ConcurrentMaps
import IsoKVSync

/// One committed version of a key.
struct CommittedVersion {
    /// The value, or nil for a deletion (a tombstone).
    var value: Bytes?
    /// The commit sequence number of the writer: the version's visibility (visible to snapshots `≥ commitTS`) and
    /// its public version number (the ETag).
    var commitTS: UInt64
    /// The transaction that wrote it (for error messages).
    var creator: UInt64
}

/// The uncommitted write of the transaction that holds the row's exclusive lock.
struct PendingWrite {
    var owner: UInt64
    /// The value, or nil for a deletion.
    var value: Bytes?
}

/// A transaction suspended in ``LockManager/acquire(_:txid:mode:wait:timeout:)`` until the row lock is granted.
struct LockWaiter {
    let txid: UInt64
    let mode: RowLockMode
    /// Unique per wait, so that a timeout, a cancellation or a deadlock check removes exactly this wait.
    let ticket: UInt64
    /// An upgrade from `.forShare` to `.forUpdate` by a current holder (queued ahead of non-holders).
    let isUpgrade: Bool
    /// Resumed exactly once, by whoever removes the waiter from `ChainState.waiters`: with success by the
    /// transaction whose release granted the lock, with an error by a timeout, a cancellation or the deadlock check.
    let continuation: CheckedContinuation<Void, any Error>
}

/// Everything the engine knows about one key: its committed versions, the pending write and the row lock.
///
/// Lives in the key directory (a ``ConcurrentMap`` from key to chain). A chain's lock is a leaf: never held while
/// taking any other lock (DESIGN.md, "Lock order").
package final class KeyChain: Sendable {
    /// The key (immutable).
    let key: Bytes
    /// Everything mutable, behind the chain's own mutex (short, synchronous critical sections only).
    let state: Locked<ChainState>

    init(key: Bytes) {
        self.key = key
        self.state = Locked(ChainState())
    }
}

/// The mutable part of a ``KeyChain``; only reachable with the chain's lock held.
struct ChainState {
    /// Committed versions, oldest first, strictly increasing `commitTS`. Only the commit path appends (while its
    /// transaction holds the exclusive lock, under the commit lock); only garbage collection removes from the front,
    /// and only versions no registered snapshot can see (see `pruneLocked`).
    var versions: [CommittedVersion] = []
    /// The uncommitted write. Invariant: `pending == nil || pending!.owner == exclusive`.
    var pending: PendingWrite?
    /// The holder of the exclusive (`.forUpdate`) lock. Invariant: `exclusive == nil || shared.isEmpty`.
    var exclusive: UInt64?
    /// The holders of the shared (`.forShare`) lock, each once.
    var shared: [UInt64] = []
    /// Suspended lock requests in grant order (upgrades first, then FIFO). Invariant: the first waiter is not
    /// grantable (otherwise `grantWaitersLocked` would have granted it).
    var waiters: [LockWaiter] = []
    /// Set once by garbage collection when the chain has no versions, no pending write, no locks and no waiters and
    /// is being removed from the directory; a retired chain is never used again (callers look the key up anew).
    var retired = false

    // MARK: Reads

    /// The newest committed version visible at `snapshot`.
    func visible(at snapshot: UInt64) -> CommittedVersion? {
        var i = versions.count - 1
        while i >= 0 {
            if versions[i].commitTS <= snapshot { return versions[i] }
            i -= 1
        }
        return nil
    }

    /// What `txid` reads: its own pending write first, then any pending write if `dirty`, then the committed version
    /// visible at `snapshot`. `.some(nil)` means "absent".
    func read(txid: UInt64, snapshot: UInt64, dirty: Bool) -> Bytes? {
        if let p = pending, dirty || p.owner == txid { return p.value }
        return visible(at: snapshot)?.value
    }

    // MARK: Row locks

    func heldMode(_ txid: UInt64) -> RowLockMode? {
        if exclusive == txid { return .forUpdate }
        return shared.contains(txid) ? .forShare : nil
    }

    /// A holder other than `txid` whose lock conflicts with `mode`, or nil if the holders allow it.
    func conflictingHolder(_ txid: UInt64, _ mode: RowLockMode) -> UInt64? {
        if let x = exclusive, x != txid { return x }
        if mode == .forUpdate, let s = shared.first(where: { $0 != txid }) { return s }
        return nil
    }

    enum TryAcquire {
        /// Already held in this mode or a stronger one.
        case held
        /// Granted now; the mode held before.
        case granted(previous: RowLockMode?)
        /// Must wait for (or report) this transaction.
        case conflict(blocker: UInt64)
    }

    /// Grants at once if nobody conflicting holds the lock and nobody is queued (a holder upgrading ignores the
    /// queue, whose members wait for it anyway).
    mutating func tryAcquireLocked(_ txid: UInt64, _ mode: RowLockMode) -> TryAcquire {
        let held = heldMode(txid)
        if let held, held.covers(mode) { return .held }
        if let blocker = conflictingHolder(txid, mode) { return .conflict(blocker: blocker) }
        if held == nil, let first = waiters.first { return .conflict(blocker: first.txid) }
        grantLocked(txid, mode)
        return .granted(previous: held)
    }

    mutating func grantLocked(_ txid: UInt64, _ mode: RowLockMode) {
        switch mode {
        case .forUpdate:
            shared.removeAll { $0 == txid }
            exclusive = txid
        case .forShare:
            if exclusive != txid && !shared.contains(txid) { shared.append(txid) }
        }
    }

    mutating func enqueueLocked(_ waiter: LockWaiter) {
        if waiter.isUpgrade {
            let at = waiters.firstIndex { !$0.isUpgrade } ?? waiters.count
            waiters.insert(waiter, at: at)
        } else {
            waiters.append(waiter)
        }
    }

    /// Grants queued requests in order while the front one is compatible; returns the continuations to resume
    /// (after the chain's lock is released).
    mutating func grantWaitersLocked() -> [CheckedContinuation<Void, any Error>] {
        var granted: [CheckedContinuation<Void, any Error>] = []
        while let w = waiters.first, conflictingHolder(w.txid, w.mode) == nil {
            waiters.removeFirst()
            grantLocked(w.txid, w.mode)
            granted.append(w.continuation)
        }
        return granted
    }

    /// Removes the wait `ticket` if it is still queued (nil if it was granted or removed already), and grants
    /// whatever its departure unblocks.
    mutating func removeWaiterLocked(_ ticket: UInt64) -> (LockWaiter?, [CheckedContinuation<Void, any Error>]) {
        guard let i = waiters.firstIndex(where: { $0.ticket == ticket }) else { return (nil, []) }
        let w = waiters.remove(at: i)
        return (w, grantWaitersLocked())
    }

    /// Releases every lock `txid` holds here and drops its pending write (end of transaction).
    mutating func releaseLocked(_ txid: UInt64) -> [CheckedContinuation<Void, any Error>] {
        if pending?.owner == txid { pending = nil }
        if exclusive == txid { exclusive = nil }
        shared.removeAll { $0 == txid }
        return grantWaitersLocked()
    }

    /// Returns `txid`'s lock to `mode` (nil: not held), for rollback to a savepoint.
    mutating func restoreLocked(_ txid: UInt64, to mode: RowLockMode?) -> [CheckedContinuation<Void, any Error>] {
        if exclusive == txid { exclusive = nil }
        shared.removeAll { $0 == txid }
        if let mode { grantLocked(txid, mode) }
        return grantWaitersLocked()
    }

    /// The wait-for edges of every queued request here, computed in one pass: each waiter waits for the holders
    /// that conflict with it and for the requests queued ahead of it that conflict with it. Only the nearest
    /// earlier `.forUpdate` request and the `.forShare` requests after it are listed: an exclusive request waits for
    /// everything ahead of it, so the rest is reachable through it. That keeps a deadlock check linear in the queue
    /// length instead of quadratic (a hot row with a hundred waiters).
    func waitEdges() -> [UInt64: [UInt64]] {
        var edges: [UInt64: [UInt64]] = [:]
        var lastExclusive: UInt64?
        var sharedSinceLastExclusive: [UInt64] = []
        for w in waiters {
            var out: [UInt64] = []
            if let x = exclusive, x != w.txid { out.append(x) }
            if w.mode == .forUpdate {
                out += shared.filter { $0 != w.txid }
                out += sharedSinceLastExclusive.filter { $0 != w.txid }
            }
            if let x = lastExclusive, x != w.txid { out.append(x) }
            if w.mode == .forUpdate {
                lastExclusive = w.txid
                sharedSinceLastExclusive = []
            } else {
                sharedSinceLastExclusive.append(w.txid)
            }
            edges[w.txid, default: []] += out
        }
        return edges
    }

    // MARK: Commit and garbage collection

    /// Turns `owner`'s pending write into the committed version `commitTS`. Caller holds the commit lock.
    mutating func installLocked(owner: UInt64, commitTS: UInt64) {
        guard let p = pending, p.owner == owner else { return }
        versions.append(CommittedVersion(value: p.value, commitTS: commitTS, creator: owner))
        pending = nil
    }

    /// Nothing to collect until the key is written again: retired, empty, or one live (non-tombstone) version.
    var needsNoCollection: Bool {
        retired || versions.isEmpty || (versions.count == 1 && versions[0].value != nil)
    }

    enum PruneResult {
        /// At most one live version left: nothing more to collect until the key is written again.
        case clean
        /// Older versions (or a tombstone) still visible to a registered snapshot: look again later.
        case keep
        /// Empty and unlocked: marked retired; the caller removes it from the directory and the index.
        case retire
    }

    /// Drops the versions no snapshot at or after `horizon` can see: everything older than the newest version with
    /// `commitTS ≤ horizon`, and that version too if it is a tombstone.
    mutating func pruneLocked(horizon: UInt64) -> PruneResult {
        if retired { return .clean }
        if let i = versions.lastIndex(where: { $0.commitTS <= horizon }) {
            if i > 0 { versions.removeFirst(i) }
            if versions[0].value == nil { versions.removeFirst() }
        }
        if versions.isEmpty && pending == nil && exclusive == nil && shared.isEmpty && waiters.isEmpty {
            retired = true
            return .retire
        }
        return needsNoCollection ? .clean : .keep
    }
}
