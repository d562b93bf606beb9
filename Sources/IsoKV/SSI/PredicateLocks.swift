import IsoKVCore
import IsoKVSync
import Synchronization

/// The key set an SIREAD lock on a scanned range covers: `lower` inclusive, `upper` exclusive (or inclusive when
/// `upperInclusive`, for a forward scan cut short by its limit), nil meaning unbounded.
struct PredicateRange: Sendable, Hashable, CustomStringConvertible {
    var lower: Bytes?
    var upper: Bytes?
    var upperInclusive = false

    /// Every key (the escalation target).
    static let all = PredicateRange(lower: nil, upper: nil)

    init(lower: Bytes?, upper: Bytes?, upperInclusive: Bool = false) {
        self.lower = lower
        self.upper = upper
        self.upperInclusive = upperInclusive
    }

    init(_ range: KeyRange) { self.init(lower: range.lower, upper: range.upper) }

    func contains(_ key: Bytes) -> Bool {
        if let lower, key < lower { return false }
        if let upper {
            if upperInclusive { if upper < key { return false } } else if !(key < upper) { return false }
        }
        return true
    }

    var description: String {
        "range [\(lower.map { "\($0)" } ?? "-∞"), \(upper.map { "\($0)" } ?? "+∞")\(upperInclusive ? "]" : ")")"
    }
}

/// One SIREAD lock on a range, held by `owner` until the owner is cleaned up (see `SSIState`).
struct RangeLock: Sendable {
    /// The serializable transaction that scanned the range.
    let owner: UInt64
    /// Unique per lock, so that a scan stopped by its limit can narrow exactly its own entry.
    let id: UInt64
    var range: PredicateRange
}

/// Point SIREAD locks: key → transactions that read it, in `stripeCount` stripes by key hash, so that serializable
/// point reads on different keys rarely share a mutex (the global SSI lock is not taken on the read path).
///
/// Invariant: an entry (key, txid) exists from just before `txid` reads the key (the lock is added first, then the
/// chain is read — see DESIGN.md "Why no conflict is missed") until `txid` is cleaned up, aborted, escalated to a
/// range, or found safe. A txid found here whose `SerializableXact` is gone is ignored: it was cleaned up (it cannot be
/// concurrent with any live transaction) or aborted.
final class PointLockTable: Sendable {
    static let stripeCount = 16
    /// Each stripe: key → holders (each txid once, usually one or two). Guarded by the stripe's own lock (a leaf).
    let stripes: [Locked<[Bytes: [UInt64]]>] = (0..<PointLockTable.stripeCount).map { _ in Locked([:]) }
    /// Invariant: at least the number of (key, holder) entries in `stripes` — incremented (sequentially
    /// consistent) before an entry is added, decremented after one is removed. A writer that loads 0 here after
    /// installing its pending write can skip the stripe: a reader whose lock it could have missed read the chain
    /// after the install (the chain's mutex orders the two), so the reader finds the write itself (SSI/DESIGN.md,
    /// "Finding rw-antidependencies").
    let entries = Atomic<Int>(0)

    @inline(__always)
    func stripe(_ key: Bytes) -> Locked<[Bytes: [UInt64]]> {
        stripes[Int(UInt(bitPattern: key.hashValue) % UInt(Self.stripeCount))]
    }

    func add(_ key: Bytes, owner: UInt64) {
        entries.add(1, ordering: .sequentiallyConsistent)
        stripe(key).withLock { table in
            table[key, default: []].append(owner)
        }
    }

    /// Whether no point lock is held (a sequentially consistent load; see `entries`).
    var isEmpty: Bool { entries.load(ordering: .sequentiallyConsistent) == 0 }

    func holders(_ key: Bytes) -> [UInt64] {
        stripe(key).withLock { $0[key] ?? [] }
    }

    func remove(_ keys: some Sequence<Bytes>, owner: UInt64) {
        for key in keys {
            let removed = stripe(key).withLock { table -> Int in
                guard var h = table[key] else { return 0 }
                let before = h.count
                h.removeAll { $0 == owner }
                table[key] = h.isEmpty ? nil : h
                return before - h.count
            }
            if removed > 0 { entries.subtract(removed, ordering: .sequentiallyConsistent) }
        }
    }

    /// Locks held, all stripes (for statistics and tests).
    var count: Int { stripes.reduce(0) { n, s in n + s.withLock { $0.values.reduce(0) { $0 + $1.count } } } }
}
