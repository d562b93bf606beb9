import IsoKVSync

/// A recorded run: every finished transaction, in the order they were recorded.
public struct History: Hashable, Sendable, Codable {
    /// Finished transactions (committed or aborted), ids unique.
    public var transactions: [TransactionRecord]

    /// A history of the given records (also how tests write histories by hand).
    public init(_ transactions: [TransactionRecord] = []) { self.transactions = transactions }
}

/// Collects the transactions of a concurrent run; safe to share between tasks and threads.
///
/// Each client builds its ``TransactionRecord`` privately while the transaction runs and hands it over once it has
/// ended; installed versions learnt later can still be filled with ``update(_:_:)``.
///
/// ```swift
/// let recorder = HistoryRecorder()
/// // in each client task:
/// var t = TransactionRecord(id: recorder.makeID(), level: .serializable)
/// t.read("x", .version(v)); t.write("x"); t.commit(order: n, installed: ["x": v + 1])
/// try recorder.record(t)
/// // at the end:
/// let result = try HistoryChecker.check(recorder.history, at: .serializable)
/// ```
///
/// Cost: one short critical section per recorded transaction (an array append and a dictionary insert).
public final class HistoryRecorder: Sendable {
    /// What the lock guards.
    struct State {
        /// Recorded transactions in recording order. Invariant: `index[t.id] == i` for `transactions[i] == t`.
        var transactions: [TransactionRecord] = []
        /// id → position in `transactions`; same keys as `transactions`' ids.
        var index: [TxnID: Int] = [:]
        /// Next id `makeID()` hands out; only increases.
        var nextID: TxnID = 1

        mutating func recordLocked(_ t: TransactionRecord) throws(HistoryError) {
            guard t.outcome != nil else { throw .noOutcome(t.id) }
            guard index[t.id] == nil else { throw .duplicateTransaction(t.id) }
            index[t.id] = transactions.count
            transactions.append(t)
            if t.id >= nextID { nextID = t.id &+ 1 }
        }
    }

    private let state: Locked<State>

    /// An empty recorder.
    public init() { state = Locked(State()) }

    /// A fresh transaction id, larger than every id recorded so far (for stores that expose none).
    public func makeID() -> TxnID {
        state.withLock { s in
            defer { s.nextID += 1 }
            return s.nextID
        }
    }

    /// Adds a finished transaction.
    /// - Throws: ``HistoryError/noOutcome(_:)`` if it has neither committed nor aborted,
    ///   ``HistoryError/duplicateTransaction(_:)`` if its id is already recorded.
    public func record(_ transaction: TransactionRecord) throws(HistoryError) {
        let result = state.withLock { s in Result { () throws(HistoryError) in try s.recordLocked(transaction) } }
        try result.get()
    }

    /// Edits a recorded transaction in place (to fill installed versions known only after it was recorded).
    /// - Throws: ``HistoryError/unknownTransaction(_:)``, or what `body` throws.
    public func update(_ id: TxnID, _ body: (inout TransactionRecord) throws(HistoryError) -> Void) throws(HistoryError)
    {
        let result = state.withLock { s in
            Result { () throws(HistoryError) in
                guard let i = s.index[id] else { throw .unknownTransaction(id) }
                try body(&s.transactions[i])
                // Keep `index` valid: the id is the record's identity and cannot be edited.
                s.transactions[i].id = id
            }
        }
        try result.get()
    }

    /// Number of recorded transactions.
    public var count: Int { state.withLock { $0.transactions.count } }

    /// A copy of everything recorded so far.
    public var history: History { state.withLock { History($0.transactions) } }
}
