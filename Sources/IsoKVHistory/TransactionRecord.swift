/// A transaction's identifier in a history: the store's transaction id, or one from ``HistoryRecorder/makeID()``.
public typealias TxnID = UInt64

/// Which version of a key a read observed.
///
/// Versions are per-key integers the store assigns at commit, increasing with each committed write of the key;
/// version 0 is "absent before any write". A read identifies what it saw either by version number or by the
/// transaction that wrote it (what a store keeps as `xmin`), which is the only way to name an uncommitted write:
///
/// ```swift
/// t.read("x", .version(3))                 // a committed version
/// t.read("x", .initial)                    // key absent, never written (version 0)
/// t.read("x", .absent)                     // key absent, store gave no version (tombstone unknown)
/// t.read("x", .writer(7))                  // the write of T7 (committed or not when read: a dirty read)
/// t.read("x", .writer(7, write: 1))        // T7's first write of "x" (T7 wrote it again later: intermediate)
/// ```
public enum Observed: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The key did not exist and had never been written (version 0).
    case initial
    /// The key was absent and the store gave no version (a deleted key whose tombstone is not reported, or a get
    /// that returns nil). Exact when nobody deletes the key during the history (it is then ``initial``); otherwise
    /// ambiguous, and the checker derives no edge from it (``HistoryStats/ambiguousAbsentReads``).
    case absent
    /// A committed version of the key. `version(0)` is the same as ``initial``. Versions smaller than every version
    /// installed by recorded transactions are taken as the state before the history (written by ⊥, the initial
    /// transaction); a deleted key is read at its tombstone's version.
    case version(Int)
    /// The version written by transaction `writer`: its `write`-th write of the key (1-based), or its last write of
    /// the key when `write` is nil. If `writer` aborted, the read is G1a; if `write` is not its last write of the
    /// key, G1b.
    case writer(TxnID, write: Int? = nil)

    /// What a store's `get` reports: nil (no value, no version) → ``absent``, 0 → ``initial``, v → ``version(_:)``.
    ///
    /// ```swift
    /// let got = try await tx.getWithVersion("x")        // (value, version)?
    /// t.read("x", Observed(version: got?.version))
    /// ```
    public init(version: Int?) {
        switch version {
        case nil: self = .absent
        case 0?: self = .initial
        case let v?: self = .version(v)
        }
    }

    public var description: String {
        switch self {
        case .initial: "v0"
        case .absent: "absent"
        case .version(let v): "v\(v)"
        case .writer(let w, let i): i.map { "T\(w).w\($0)" } ?? "T\(w)"
        }
    }
}

/// What a write did to the key.
public enum WriteKind: String, Hashable, Sendable, Codable {
    /// Put or insert: the key is present afterwards.
    case put
    /// Delete: the key is absent afterwards (the version is a tombstone).
    case delete
}

/// One recorded operation, in program order.
public enum Operation: Hashable, Sendable, Codable {
    /// A point read of `key` that observed `observed`.
    case read(key: HistoryKey, observed: Observed)
    /// A range scan over `range` that returned `results` (present keys only, each with the version it saw).
    ///
    /// `limit` and `reverse` describe the scan as issued: when `results.count == limit` the scan stopped early and
    /// only covered up to its last returned key, so the checker narrows the predicate accordingly.
    /// `absent` optionally lists keys in the range the scan saw as deleted, with the tombstone version it saw; it
    /// is only needed when a key in the range was deleted during the history (see DESIGN.md, "predicate reads").
    case scan(range: KeyRange, limit: Int?, reverse: Bool, results: [ScanEntry], absent: [ScanEntry])
    /// A write of `key`. `installed` is the version it installed, filled at commit for the transaction's last write
    /// of the key; nil otherwise (and for aborted transactions).
    case write(key: HistoryKey, kind: WriteKind, installed: Int?)
}

/// One key a scan returned (or saw as deleted) and the version it observed.
public struct ScanEntry: Hashable, Sendable, Codable {
    /// The key returned (or seen absent).
    public var key: HistoryKey
    /// The version the scan saw.
    public var observed: Observed
    /// An entry: `ScanEntry("room/1", .version(3))`.
    public init(_ key: HistoryKey, _ observed: Observed) {
        self.key = key
        self.observed = observed
    }
}

/// How a transaction ended.
public enum Outcome: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Committed; `order` is the store's commit sequence number when it exposes one (used to order the versions of
    /// a key whose writes carry no installed version).
    case committed(order: Int?)
    /// Rolled back or failed, with the store's error code (`"40001"`, `"40P01"`, `"rollback"` …).
    case aborted(code: String)

    /// Whether the outcome is a commit.
    public var isCommitted: Bool {
        if case .committed = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .committed(let o): o.map { "committed #\($0)" } ?? "committed"
        case .aborted(let c): "aborted \(c)"
        }
    }
}

/// The record of one transaction, built by the client that runs it and handed to ``HistoryRecorder/record(_:)``.
///
/// A value type owned by one client while it runs (no locking); the recorder takes a copy when it is recorded.
///
/// ```swift
/// var t = TransactionRecord(id: 7, level: .snapshot)
/// t.read("x", .version(3))
/// t.write("x")
/// t.scan(KeyRange(prefix: "room/"), results: [ScanEntry("room/1", .version(2))])
/// t.commit(order: 12, installed: ["x": 4])
/// recorder.record(t)
/// ```
public struct TransactionRecord: Hashable, Sendable, Codable {
    /// Unique within a history.
    public var id: TxnID
    /// The level the transaction ran at (informative; the checker checks against the level it is given).
    public var level: HistoryIsolation
    /// Operations in program order.
    public var operations: [Operation]
    /// nil while the transaction runs; set by ``commit(order:installed:)`` or ``abort(code:)``.
    public var outcome: Outcome?

    /// A record, normally empty at the transaction's start and filled as it runs.
    public init(id: TxnID, level: HistoryIsolation, operations: [Operation] = [], outcome: Outcome? = nil) {
        self.id = id
        self.level = level
        self.operations = operations
        self.outcome = outcome
    }

    /// Records a point read.
    public mutating func read(_ key: HistoryKey, _ observed: Observed) {
        operations.append(.read(key: key, observed: observed))
    }

    /// Records a scan and what it returned. See ``Operation/scan(range:limit:reverse:results:absent:)``.
    public mutating func scan(
        _ range: KeyRange, limit: Int? = nil, reverse: Bool = false, results: [ScanEntry], absent: [ScanEntry] = []
    ) {
        operations.append(.scan(range: range, limit: limit, reverse: reverse, results: results, absent: absent))
    }

    /// Records a write and returns its 1-based index among this transaction's writes of `key` (what a dirty reader
    /// passes as `Observed.writer(id, write:)`).
    @discardableResult
    public mutating func write(_ key: HistoryKey, _ kind: WriteKind = .put) -> Int {
        operations.append(.write(key: key, kind: kind, installed: nil))
        return writeCount(of: key)
    }

    /// Records a delete (a write that leaves the key absent).
    @discardableResult
    public mutating func delete(_ key: HistoryKey) -> Int { write(key, .delete) }

    /// How many writes of `key` this transaction has recorded so far.
    public func writeCount(of key: HistoryKey) -> Int {
        operations.reduce(0) { n, op in
            if case .write(let k, _, _) = op, k == key { return n + 1 }
            return n
        }
    }

    /// The keys this transaction wrote, each once, in first-write order.
    public var writtenKeys: [HistoryKey] {
        var seen = Set<HistoryKey>()
        var out: [HistoryKey] = []
        for case .write(let k, _, _) in operations where seen.insert(k).inserted { out.append(k) }
        return out
    }

    /// Sets the version installed by the last write of `key` (call at or after commit).
    /// - Throws: ``HistoryError/noWrite(txn:key:)`` if the transaction never wrote `key`.
    public mutating func setInstalled(_ key: HistoryKey, version: Int) throws(HistoryError) {
        guard let i = operations.lastIndex(where: { if case .write(let k, _, _) = $0 { k == key } else { false } })
        else { throw .noWrite(txn: id, key: key) }
        guard case .write(let k, let kind, _) = operations[i] else { return }
        operations[i] = .write(key: k, kind: kind, installed: version)
    }

    /// Marks the transaction committed, with the store's commit order number if it has one, and the versions its
    /// writes installed (keys it did not write are ignored).
    public mutating func commit(order: Int? = nil, installed: [HistoryKey: Int] = [:]) {
        for (k, v) in installed { try? setInstalled(k, version: v) }
        outcome = .committed(order: order)
    }

    /// Marks the transaction aborted with the store's error code.
    public mutating func abort(code: String) {
        outcome = .aborted(code: code)
    }
}

/// A malformed history (a bug in the caller's recording, not in the store).
public enum HistoryError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Two transactions were recorded with the same id.
    case duplicateTransaction(TxnID)
    /// A transaction was recorded without an outcome.
    case noOutcome(TxnID)
    /// `setInstalled` named a key the transaction never wrote.
    case noWrite(txn: TxnID, key: HistoryKey)
    /// The committed writes of a key can be ordered neither by installed version nor by commit order.
    case unorderedWrites(key: HistoryKey, txn: TxnID)
    /// `update` named a transaction that is not recorded.
    case unknownTransaction(TxnID)
    /// A write index or version or limit is out of range (negative, zero where 1-based).
    case invalidValue(txn: TxnID, String)
    /// More transactions than the checker can number (2^30).
    case tooLarge(Int)

    public var description: String {
        switch self {
        case .duplicateTransaction(let t): "transaction T\(t) recorded twice"
        case .noOutcome(let t): "transaction T\(t) has no outcome (neither committed nor aborted)"
        case .noWrite(let t, let k): "T\(t) never wrote \(k)"
        case .unorderedWrites(let k, let t):
            "committed writes of \(k) cannot be ordered: T\(t) has neither an installed version nor a commit order"
        case .unknownTransaction(let t): "no transaction T\(t) in the history"
        case .invalidValue(let t, let what): "T\(t): \(what)"
        case .tooLarge(let n): "\(n) transactions: the checker handles fewer than 2^30"
        }
    }
}
