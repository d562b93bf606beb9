import IsoKVCore

/// One broken invariant, as ``Database/check(_:)`` reports it: what is wrong (``kind``), the key and the
/// transaction involved where there is one, and a sentence with the numbers.
///
/// ```swift
/// for finding in db.check().findings {
///     print(finding)    // "pendingWriteWithoutLock (key "k", tx7): pending write of tx7, but the exclusive lock is held by nobody"
/// }
/// ```
public struct CheckFinding: Sendable, Hashable, CustomStringConvertible {
    public var kind: Kind
    /// The key whose chain (or scan-index entry, or SIREAD lock) is wrong, if the invariant is about a key.
    public var key: Bytes?
    /// The transaction involved (holder, waiter, writer, SSI record), if any.
    public var transaction: TransactionID?
    public var message: String

    public init(_ kind: Kind, key: Bytes? = nil, transaction: UInt64? = nil, _ message: String) {
        self.kind = kind
        self.key = key
        self.transaction = transaction.map { TransactionID(rawValue: $0) }
        self.message = message
    }

    public var description: String {
        var where_: [String] = []
        if let key { where_.append("key \(key)") }
        if let transaction { where_.append("tx\(transaction.rawValue)") }
        return kind.rawValue + (where_.isEmpty ? "" : " (" + where_.joined(separator: ", ") + ")") + ": " + message
    }

    /// The invariants ``Database/check(_:)`` verifies. Each case names where the invariant is declared. The ones
    /// with ``requiresQuiescence`` relate two structures that are updated one after the other, so they only hold
    /// between operations; the others hold at every instant (each is read under the one lock that guards it).
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        // MARK: One chain (KeyChain.swift, `ChainState`), at every instant

        /// `versions` is not strictly increasing in `commitTS` (`ChainState.versions`).
        case versionOrder
        /// A version's `commitTS` is above the last commit number the oracle assigned (`Oracle.commitLock`).
        case versionAfterLastCommit
        /// A version above `published` (installed, not yet visible: a durable commit waiting for its fsync) whose
        /// writer no longer holds the row's exclusive lock; the commit protocol keeps it until after publication
        /// (DESIGN.md, "Durable database").
        case unpublishedVersionUnlocked
        /// `pending != nil && pending.owner != exclusive` (`ChainState.pending`).
        case pendingWriteWithoutLock
        /// `exclusive != nil && !shared.isEmpty`, or a shared holder listed twice (`ChainState.exclusive`/`shared`).
        case conflictingLockHolders
        /// The first waiter could be granted: a release forgot `grantWaitersLocked` (`ChainState.waiters`).
        case grantableWaiter
        /// A retired chain holds a version, a pending write, a lock or a waiter (`ChainState.retired`).
        case retiredChainNotEmpty

        // MARK: Clocks and snapshots (Oracle.swift), at every instant

        /// `published` differs from the last assigned commit number in memory, or exceeds it in a durable database
        /// (`Oracle.published`).
        case oracleClock
        /// A registered snapshot above `published`, or a registry whose `oldest` is not its minimum
        /// (`SnapshotRegistry`).
        case snapshotRegistry

        // MARK: SSI (SSI/SSIState.swift, SerializableXact.swift), at every instant

        /// `xacts[r].outConflicts[w] != nil ⇔ xacts[w].inConflicts[r] != nil` does not hold (`SerializableXact.inConflicts`).
        case ssiEdgeAsymmetric
        /// A record contradicts itself or the clock: `commitSeq <= beginSeq`, a sequence above `clock`, `doomed`
        /// without a reason (or the reverse), doomed and committed, prepared and committed, prepared but not in
        /// the prepared list (or the reverse), a prepared commit already visible but not marked committed, a
        /// tracked record marked safe, or `possibleUnsafe` not kept on both ends (`SerializableXact`).
        case ssiRecordInconsistent
        /// A range SIREAD lock whose owner has no record (`SSIState.ranges`).
        case ssiRangeLockOrphaned
        /// `activeReadWrite` is not exactly the uncommitted read-write records, or a `fastPath` mirror differs
        /// from what it mirrors (`SSIState.activeReadWrite`, `SSIFastPath`).
        case ssiActiveSetMismatch

        // MARK: Across structures: only when quiescent

        /// A key with a (not retired) chain in the directory is missing from the scan index (`Database.index`).
        case keyNotIndexed
        /// A scan-index entry holds a chain that is not retired and is not the directory's chain for its key
        /// (`Database.index`).
        case indexedChainNotInDirectory
        /// A retired chain is still in the directory or the scan index; GC removes it right after retiring it
        /// (`ChainState.retired`, `Database.remove(retired:)`).
        case retiredChainReachable
        /// A row lock, a pending write or a lock wait belongs to a transaction that has ended (`LiveTransactions`).
        case lockOfEndedTransaction
        /// The wait-for graph and the chains' queues disagree: a `waitingOn` entry without its queued request,
        /// or a queued request without its `waitingOn` entry (`WaitGraph.waitingOn`).
        case waitGraphMismatch
        /// More snapshots are registered than transactions are open: a snapshot outlived its transaction
        /// (`Oracle.snapshots`).
        case snapshotWithoutTransaction
        /// A chain holds versions GC may have to drop but is not in the GC backlog, so nothing will ever look at
        /// it again (`GarbageCollector.backlog`).
        case versionsNotFiledForGC
        /// An SSI record that has not committed (or a deferrable wait) belongs to a transaction that has ended
        /// (`SSIState.xacts`, `SSIState.deferred`).
        case ssiRecordOfEndedTransaction
        /// A point SIREAD lock held by a transaction that has no record, has ended and is not waiting to be
        /// released (`PointLockTable`).
        case ssiPointLockOrphaned

        /// True for the invariants that relate structures updated one after the other (directory then index,
        /// locks then the live-transaction registry…): they are exact only when no operation is running, and
        /// ``Database/CheckMode/concurrent`` leaves them out.
        public var requiresQuiescence: Bool {
            switch self {
            case .versionOrder, .versionAfterLastCommit, .unpublishedVersionUnlocked, .pendingWriteWithoutLock,
                .conflictingLockHolders, .grantableWaiter, .retiredChainNotEmpty, .oracleClock, .snapshotRegistry,
                .ssiEdgeAsymmetric, .ssiRecordInconsistent, .ssiRangeLockOrphaned, .ssiActiveSetMismatch:
                return false
            case .keyNotIndexed, .indexedChainNotInDirectory, .retiredChainReachable, .lockOfEndedTransaction,
                .waitGraphMismatch, .snapshotWithoutTransaction, .versionsNotFiledForGC,
                .ssiRecordOfEndedTransaction, .ssiPointLockOrphaned:
                return true
            }
        }
    }
}

/// What ``Database/check(_:)`` found, and how much it looked at.
public struct CheckReport: Sendable, Hashable, CustomStringConvertible {
    /// Broken invariants, ordered by kind, then key, then transaction; empty when the database is consistent.
    public var findings: [CheckFinding] = []
    /// The mode the check ran in.
    public var mode: Database.CheckMode
    /// Chains examined (directory and scan-index entries, retired ones included).
    public var chains = 0
    /// Committed versions examined.
    public var versions = 0
    /// Row-lock holders and queued requests examined.
    public var locks = 0
    /// Transactions open when the check began (with or without an id).
    public var openTransactions = 0
    /// SSI records (active and retained committed serializable transactions) examined.
    public var serializableRecords = 0

    public init(mode: Database.CheckMode) { self.mode = mode }

    /// True when nothing was found.
    public var isConsistent: Bool { findings.isEmpty }

    public var description: String {
        let summary =
            "\(chains) chains, \(versions) versions, \(locks) locks, \(openTransactions) open transactions, "
            + "\(serializableRecords) SSI records"
        if findings.isEmpty { return "consistent (\(summary))" }
        return "\(findings.count) problem\(findings.count == 1 ? "" : "s") (\(summary)):\n"
            + findings.map { "  " + $0.description }.joined(separator: "\n")
    }
}

extension Database {
    /// Which invariants ``check(_:)`` verifies.
    public enum CheckMode: String, Sendable, Hashable {
        /// Every invariant, including those that relate two structures (directory and scan index, locks and the
        /// transactions that hold them, snapshots and open transactions, GC backlog, SSI records and live
        /// transactions). Exact only when the database is quiescent: no operation is running — transactions may
        /// be open between operations, or suspended in a row-lock wait or a deferrable wait — and no checkpoint
        /// or backup is running. Called while other operations run, it may report their in-between states.
        case quiescent
        /// Only the invariants that hold at every instant (``CheckFinding/Kind/requiresQuiescence`` false): exact
        /// while other transactions run. What ``Configuration/checkAfterEveryCommit`` uses.
        case concurrent
    }
}
