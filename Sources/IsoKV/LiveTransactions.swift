import IsoKVCore
import IsoKVSync

/// The transactions that have not ended, as the consistency checker (`Database+Check.swift`) needs them: the ids
/// of active transactions, and a count of every active transaction, with or without an id.
///
/// Maintained by ``Transaction`` only: `init` counts it; its id joins `ids` when it is assigned while the
/// transaction is active; both go when `state` leaves `.active` — the first line of `endTransaction`, *before* its
/// locks, pending writes and snapshot are released. So "holds a lock but has ended" is a real leak only when
/// quiescent, which is when ``Database/check(_:)`` relates the two.
///
/// Cost: a relaxed add on a padded counter cell at begin and at end (every transaction), plus one short critical
/// section on a striped leaf lock at id assignment and at end (transactions that write, lock or read `id`).
final class LiveTransactions: Sendable {
    static let stripeCount = 8
    /// Ids of active transactions, striped by `txid % stripeCount`. Leaf locks, each taken alone.
    private let ids: [Locked<TxidSet>] = (0..<LiveTransactions.stripeCount).map { _ in Locked([]) }
    /// Active transactions: +1 in `init`, −1 at the end, each in the cell of `Transaction.liveStripe` (the
    /// current thread's, which may differ between the two: only the sum is a count).
    let open = StripedCounter(stripes: Oracle.stripeCount)

    @inline(__always)
    private func stripe(_ txid: UInt64) -> Locked<TxidSet> { ids[Int(txid % UInt64(Self.stripeCount))] }

    func began(stripe: Int) { open.add(1, stripe: stripe) }

    func assigned(_ txid: UInt64) { _ = stripe(txid).withLock { $0.insert(txid) } }

    /// The transaction with `txid` (0: none assigned) and counted in `stripe` has ended.
    func ended(txid: UInt64, stripe s: Int) {
        open.add(-1, stripe: s)
        if txid != 0 { forget(txid) }
    }

    func forget(_ txid: UInt64) { _ = stripe(txid).withLock { $0.remove(txid) } }

    /// The ids of active transactions (stripe by stripe: not a snapshot while transactions begin and end).
    func activeIDs() -> Set<UInt64> {
        ids.reduce(into: Set<UInt64>()) { all, s in s.withLock { all.formUnion($0) } }
    }
}
