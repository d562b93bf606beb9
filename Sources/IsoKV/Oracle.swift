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
    /// rarely touch the same lock when they begin and end. A transaction uses the stripe its handle's address picks
    /// (`Transaction.snapshotStripe`).
    /// Since December 2026 only statement snapshots, backups and transactions whose slot search found every slot
    /// taken use them; `.snapshot` and `.serializable` transactions register in ``slots``.
    let snapshots: [Locked<SnapshotRegistry>] = (0..<Oracle.stripeCount).map { _ in Locked(SnapshotRegistry()) }
    static let stripeCount = 8
    /// Registrations in `snapshots`, all stripes: incremented inside the stripe's lock *before* `published` is
    /// loaded for the snapshot, decremented after the removal (both sequentially consistent). While it is 0,
    /// ``horizon()`` skips the stripes' locks (argument there). Only ``registerSnapshot(stripe:)`` and
    /// ``unregisterSnapshot(_:stripe:)`` (and a checker test hook) change the stripes.
    let stripeRegistrations = Atomic<Int>(0)
    /// Lock-free snapshot registrations (``SnapshotSlots``): what a `.snapshot` transaction's first read takes.
    let slots: SnapshotSlots
    /// The slot that held the smallest lower bound when ``horizon()`` last found a slot taken (-1: never). A hint
    /// only, written by `horizon()` when it changes: ``olderRegistrationLive(than:)`` reads that one slot to tell
    /// whether a registration older than a released one is still live.
    private let oldestSlotHint = Atomic<Int>(-1)
    /// `slots`, unretained (this oracle holds it): a `.snapshot` transaction's registration and release reach it
    /// without writing its reference count, a cache line every thread would share.
    private let slotsRef: Unmanaged<SnapshotSlots>

    init() {
        let slots = SnapshotSlots()
        self.slots = slots
        self.slotsRef = .passUnretained(slots)
    }

    func newTransactionID() -> UInt64 { nextTxID.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// The sequence number a read of "the newest committed data" uses right now.
    @inline(__always)
    func latest() -> UInt64 { published.load(ordering: .acquiring) }

    /// Takes and registers a snapshot of the newest published commit in stripe `stripe`. The read of `published`
    /// happens under the stripe's lock; see ``horizon()`` for why that makes garbage collection safe.
    func registerSnapshot(stripe: Int) -> UInt64 {
        snapshots[stripe].withLock { registry in
            stripeRegistrations.add(1, ordering: .sequentiallyConsistent)
            return registry.registerLocked(published.load(ordering: .sequentiallyConsistent))
        }
    }

    /// Unregisters `snapshot`; returns whether its stripe's oldest snapshot moved forward (then the global horizon
    /// may have moved too, and a sweep may free versions).
    func unregisterSnapshot(_ snapshot: UInt64, stripe: Int) -> Bool {
        snapshots[stripe].withLock { registry in
            guard let oldestMoved = registry.unregisterLocked(snapshot) else { return false }
            stripeRegistrations.subtract(1, ordering: .sequentiallyConsistent)
            return oldestMoved
        }
    }

    /// Takes a snapshot of the newest published commit and registers it without a lock, in a free slot of
    /// ``slots`` (searched from `hint`); falls back to `stripe` of the locked registry when every slot is taken.
    /// Returns the snapshot and the slot (-1: registered in the stripe). Why it is safe: ``horizon()``.
    @inline(__always)
    func registerSnapshotFast(hint: Int, stripe: Int) -> (snapshot: UInt64, slot: Int) {
        let lowerBound = published.load(ordering: .sequentiallyConsistent)
        guard let slot = slotsRef._withUnsafeGuaranteedRef({ $0.claim(lowerBound, hint: hint) }) else {
            return (registerSnapshot(stripe: stripe), -1)
        }
        // Read after the claim: a horizon computed before the claim was visible read `published` earlier, so it is
        // at most this value; one computed after sees the claim (≤ this value). The slot holds a lower bound.
        return (published.load(ordering: .sequentiallyConsistent), slot)
    }

    /// Ends a registration of ``registerSnapshotFast(hint:stripe:)`` (slot -1: the one in `stripe`). Returns whether
    /// the horizon may have moved forward: always true for a slot (a slot does not know whether it held the oldest
    /// snapshot; the caller's sweep is skipped anyway while the GC backlog is empty, and otherwise asks
    /// ``olderRegistrationLive(than:)`` first).
    @inline(__always)
    func unregisterSnapshotFast(_ snapshot: UInt64, slot: Int, stripe: Int) -> Bool {
        if slot < 0 { return unregisterSnapshot(snapshot, stripe: stripe) }
        slotsRef._withUnsafeGuaranteedRef { $0.release(slot) }
        return true
    }

    /// Whether the hinted slot (``oldestSlotHint``) holds a lower bound below `snapshot`, read after the caller
    /// released its registration of `snapshot`: one load of the hint and one of that slot, instead of
    /// ``horizon()``'s walk over every slot. Then the caller's release did not move the horizon past that bound: the
    /// minimum over the slots is at or below it, before the release and after. Garbage collection asks it only when
    /// its backlog is not empty (both loads touch lines other threads write).
    ///
    /// The registration the hint found then reports the horizon's move when it ends, unless it too finds an older
    /// one. The registration with the smallest bound finds none and does the whole check. Two ends that race each
    /// other are sequentially consistent: each releases and then loads, so the one that loads second sees the
    /// other's release, and nobody is left waiting on an ended registration.
    ///
    /// One case defers a little work: a bound at or above the caller's own lower bound but below `snapshot` (a
    /// registration that loaded `published` between the caller's two loads). There the caller's release may have
    /// moved the horizon up to that bound, and what that frees waits for the next end that checks. It is deferred,
    /// never lost: the last registration to end always checks.
    @inline(__always)
    func olderRegistrationLive(than snapshot: UInt64) -> Bool {
        let at = oldestSlotHint.load(ordering: .relaxed)
        guard at >= 0, let bound = slotsRef._withUnsafeGuaranteedRef({ $0.bound(at: at) }) else { return false }
        return bound < snapshot
    }

    /// The garbage-collection horizon: the oldest live snapshot, or the newest published commit if none is live.
    /// Every version older than the newest version at or below the horizon is invisible to everybody.
    ///
    /// Safe against a concurrent registration without a global lock: `published` is read first, then each stripe
    /// under its lock. Either the stripe's scan sees the new snapshot `s` (so the result is `≤ s`), or the scan
    /// came first, and then the registrant read `published` after this function did, so `s ≥ p ≥ result`.
    /// The horizon never decreases (new snapshots start at `published`), so a horizon computed earlier is still a
    /// safe bound later.
    ///
    /// The slots (``registerSnapshotFast(hint:stripe:)``): a registrant loads `published` (a lower bound `b`), claims a
    /// slot holding `b` with a compare-and-exchange, then loads `published` again and uses that value `s ≥ b` as
    /// its snapshot. Every access here and there is sequentially consistent. If this function's load of the slot
    /// comes after the claim, it sees `b ≤ s` (or a later claim's value, if the transaction ended meanwhile). If it
    /// comes before the claim, then this function's load of `published` came before the registrant's second load,
    /// so the result is at most `s` (`published` only grows). Either way the result is `≤ s`.
    ///
    /// The stripes are skipped (no lock taken) while `stripeRegistrations` is 0 — the common case, since
    /// transactions register in slots: a registrant increments it, then loads `published`, both sequentially
    /// consistent; if this function's load of the count (after its load of `published`) reads 0, the increment
    /// comes later in the total order, so the registrant's `published` is at least ours: `s ≥ result`. A
    /// registration that ended before the load needs no protection.
    func horizon() -> UInt64 {
        var h = published.load(ordering: .sequentiallyConsistent)
        if let (oldest, at) = slots.oldestWithSlot() {
            if oldest < h { h = oldest }
            if oldestSlotHint.load(ordering: .relaxed) != at { oldestSlotHint.store(at, ordering: .relaxed) }
        }
        guard stripeRegistrations.load(ordering: .sequentiallyConsistent) > 0 else { return h }
        for stripe in snapshots {
            if let oldest = stripe.withLock({ $0.oldest }), oldest < h { h = oldest }
        }
        return h
    }

    /// Registered snapshots, all stripes and slots.
    var liveSnapshots: Int { snapshots.reduce(slots.occupied().count) { n, s in n + s.withLock { $0.liveCount } } }
}

/// Lock-free registrations of snapshots, for garbage collection's horizon: a fixed array of slots, each an atomic
/// word on its own 128 bytes. 0 means free; otherwise the slot holds `b + 1` for a lower bound `b` of a live
/// snapshot (see ``Oracle/horizon()``). A registration is a compare-and-exchange on a free slot (searched from a
/// hint, so a thread tends to reuse the same line) and its end a store of 0: two atomic writes on a line no other
/// thread writes, instead of a stripe lock taken twice and a dictionary insert and remove.
///
/// ```swift
/// let slots = SnapshotSlots()
/// if let i = slots.claim(41, hint: 0) { slots.oldest()  /* 41 */; slots.release(i) }
/// ```
final class SnapshotSlots: @unchecked Sendable {
    // @unchecked Sendable: `words` is only accessed through atomics; allocated in init, freed in deinit.
    /// Number of slots. More concurrent `.snapshot` transactions than this register in the locked stripes.
    static let count = 32
    /// Words per slot: 128 bytes, so that two slots never share a cache line (nor an adjacent-line prefetch pair).
    static let stride = 16
    private let words: UnsafeMutablePointer<Atomic<UInt64>>

    init() {
        words = .allocate(capacity: Self.count * Self.stride)
        for i in 0..<(Self.count * Self.stride) { (words + i).initialize(to: Atomic(0)) }
    }

    deinit {
        words.deinitialize(count: Self.count * Self.stride)
        words.deallocate()
    }

    @inline(__always)
    private func slot(_ i: Int) -> UnsafeMutablePointer<Atomic<UInt64>> { words + i &* Self.stride }

    /// Claims a free slot for the lower bound `bound`, searching from `hint`; nil if all are taken.
    @inline(__always)
    func claim(_ bound: UInt64, hint: Int) -> Int? {
        let start = hint & (Self.count - 1)
        var k = 0
        while k < Self.count {
            let i = (start &+ k) & (Self.count - 1)
            let w = slot(i)
            if w.pointee.load(ordering: .relaxed) == 0,
                w.pointee.compareExchange(
                    expected: 0, desired: bound &+ 1, ordering: .sequentiallyConsistent
                ).exchanged
            {
                return i
            }
            k &+= 1
        }
        return nil
    }

    /// Frees slot `i` (its registration ended).
    @inline(__always)
    func release(_ i: Int) { slot(i).pointee.store(0, ordering: .sequentiallyConsistent) }

    /// The smallest registered lower bound, or nil if no slot is taken.
    func oldest() -> UInt64? { oldestWithSlot()?.bound }

    /// The smallest registered lower bound and the slot holding it, or nil if no slot is taken.
    func oldestWithSlot() -> (bound: UInt64, slot: Int)? {
        var m = UInt64.max
        var at = -1
        for i in 0..<Self.count {
            let v = slot(i).pointee.load(ordering: .sequentiallyConsistent)
            if v != 0 && v &- 1 < m { (m, at) = (v &- 1, i) }
        }
        return at < 0 ? nil : (m, at)
    }

    /// The lower bound registered in slot `i`, or nil if it is free.
    @inline(__always)
    func bound(at i: Int) -> UInt64? {
        let v = slot(i).pointee.load(ordering: .sequentiallyConsistent)
        return v == 0 ? nil : v &- 1
    }

    /// The registered lower bounds, slot by slot (not a snapshot while transactions begin and end).
    func occupied() -> [UInt64] {
        (0..<Self.count).compactMap { i in
            let v = slot(i).pointee.load(ordering: .sequentiallyConsistent)
            return v == 0 ? nil : v &- 1
        }
    }
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

    /// Removes one registration of `s`: nil if `s` was not registered, else whether the oldest snapshot moved.
    mutating func unregisterLocked(_ s: UInt64) -> Bool? {
        guard let n = counts[s] else { return nil }
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
