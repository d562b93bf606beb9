import IsoKVHistory
import IsoKVTestSupport

/// A small in-test multiversion key-value store whose isolation is chosen per run, some of it deliberately broken,
/// driven by a random interleaving scheduler. It records every transaction it runs, so the checker's verdict can be
/// compared with what the store is known to guarantee.
struct ModelStore {
    enum Kind {
        /// Snapshot isolation done right: one snapshot per transaction, first committer wins.
        case snapshot
        /// Broken for snapshot: each read sees the latest committed version, writes are installed blindly at commit
        /// (read committed with application read-modify-write: lost updates, read skew, write skew).
        case readCommittedBlind
        /// Reads see other transactions' uncommitted writes (dirty and intermediate reads), blind writes.
        case readUncommitted
        /// No write locks at all: a write replaces the current version at once, commit or not (dirty writes, G0).
        case noWriteLocks
        /// Strict two-phase locking, no-wait: shared locks for reads, exclusive for writes, a scan share-locks every
        /// key slot of its range (the key space is finite, so this is next-key locking); a conflict aborts the
        /// requester with 40001. Interleaved, yet serializable.
        case twoPhaseLocking
    }

    /// `.twoPhaseLocking` only: the lock table. Invariant: a key has an exclusive holder or shared holders, not both
    /// (except a holder's own shared lock upgraded in place).
    struct LockState {
        var exclusive: TxnID?
        var shared: Set<TxnID> = []
    }

    /// One key's current version. `version` 0 = never written.
    struct Cell {
        var version = 0
        var present = false
        var writer: TxnID?
        /// Which of `writer`'s writes of the key this is (1-based).
        var writeIndex = 0
    }

    struct Active {
        var snapshot: [HistoryKey: Cell]
        /// Own writes: kind of the last one and how many.
        var writes: [HistoryKey: (kind: WriteKind, count: Int)] = [:]
        var record: TransactionRecord
    }

    let kind: Kind
    let keys: [HistoryKey]
    var committed: [HistoryKey: Cell] = [:]
    var active: [TxnID: Active] = [:]
    /// `.readUncommitted` only: uncommitted writes per key, newest last.
    var uncommitted: [HistoryKey: [(writer: TxnID, index: Int, kind: WriteKind)]] = [:]
    var commitCounter = 0
    var locks: [HistoryKey: LockState] = [:]
    /// Transactions that lost a lock conflict and must abort with 40001 (`.twoPhaseLocking`).
    var failed: Set<TxnID> = []

    init(kind: Kind, keyCount: Int) {
        self.kind = kind
        keys = (0..<keyCount).map { HistoryKey("k" + String(1000 + $0).dropFirst()) }
    }

    var level: HistoryIsolation {
        switch kind {
        case .snapshot: .snapshot
        case .readCommittedBlind: .readCommitted
        case .readUncommitted, .noWriteLocks: .readUncommitted
        case .twoPhaseLocking: .serializable
        }
    }

    mutating func begin(_ id: TxnID) {
        active[id] = Active(snapshot: committed, record: TransactionRecord(id: id, level: level))
    }

    /// What a read of `key` by `id` sees right now (own writes first).
    func observe(_ id: TxnID, _ key: HistoryKey, rng: inout some RandomNumberGenerator) throws -> (
        Observed, present: Bool
    ) {
        guard let me = active[id] else { throw NotActive(id: id) }
        if let own = me.writes[key] { return (.writer(id, write: own.count), own.kind == .put) }
        if kind == .readUncommitted, let dirty = uncommitted[key]?.last(where: { $0.writer != id }) {
            return (.writer(dirty.writer, write: dirty.index), dirty.kind == .put)
        }
        let cell = (kind == .snapshot ? me.snapshot[key] : committed[key]) ?? Cell()
        guard cell.version > 0, let writer = cell.writer else { return (.initial, false) }
        // Name the version by number or by writer, at random, to exercise both.
        if kind == .noWriteLocks || Bool.random(using: &rng) {
            return (.writer(writer, write: cell.writeIndex), cell.present)
        }
        return (.version(cell.version), cell.present)
    }

    /// Takes a lock for `id` under `.twoPhaseLocking` (no-op otherwise); false and `failed` on a conflict.
    mutating func lock(_ id: TxnID, _ key: HistoryKey, exclusive: Bool) -> Bool {
        guard kind == .twoPhaseLocking, !failed.contains(id) else { return !failed.contains(id) }
        var l = locks[key] ?? LockState()
        if let holder = l.exclusive, holder != id {
            failed.insert(id)
            return false
        }
        if exclusive {
            guard l.shared.subtracting([id]).isEmpty else {
                failed.insert(id)
                return false
            }
            l.exclusive = id
        } else if l.exclusive != id {
            l.shared.insert(id)
        }
        locks[key] = l
        return true
    }

    mutating func read(_ id: TxnID, _ key: HistoryKey, rng: inout some RandomNumberGenerator) throws {
        guard lock(id, key, exclusive: false) else { return }
        let (seen, _) = try observe(id, key, rng: &rng)
        try withActive(id) { $0.record.read(key, seen) }
    }

    mutating func scan(_ id: TxnID, _ range: KeyRange, rng: inout some RandomNumberGenerator) throws {
        var results: [ScanEntry] = []
        var absent: [ScanEntry] = []
        for key in keys where range.contains(key) {
            guard lock(id, key, exclusive: false) else { return }
        }
        for key in keys where range.contains(key) {
            let (seen, present) = try observe(id, key, rng: &rng)
            if present {
                results.append(ScanEntry(key, seen))
            } else if try writesOf(id)[key] == nil {
                // A tombstone the scan stepped over, or a key it knows was never written: listing both makes the
                // checker's predicate reads exact even for keys deleted later in the history.
                absent.append(ScanEntry(key, seen))
            }
        }
        try withActive(id) { $0.record.scan(range, results: results, absent: absent) }
    }

    mutating func write(_ id: TxnID, _ key: HistoryKey, _ wkind: WriteKind) throws {
        guard lock(id, key, exclusive: true) else { return }
        let index = try withActive(id) { a in
            let index = a.record.write(key, wkind)
            a.writes[key] = (wkind, index)
            return index
        }
        switch kind {
        case .readUncommitted:
            uncommitted[key, default: []].append((id, index, wkind))
        case .noWriteLocks:
            // Installed at once, visible to all, whatever becomes of the writer.
            let v = (committed[key]?.version ?? 0) + 1
            committed[key] = Cell(version: v, present: wkind == .put, writer: id, writeIndex: index)
            try withActive(id) { try $0.record.setInstalled(key, version: v) }
        case .snapshot, .readCommittedBlind, .twoPhaseLocking:
            break
        }
    }

    /// Commits (or fails with 40001 under first-committer-wins) and returns the finished record.
    mutating func commit(_ id: TxnID) throws -> TransactionRecord {
        if failed.contains(id) { return try rollback(id, code: "40001") }
        guard var me = active.removeValue(forKey: id) else { throw NotActive(id: id) }
        if kind == .snapshot {
            for key in me.writes.keys where (committed[key]?.version ?? 0) != (me.snapshot[key]?.version ?? 0) {
                me.record.abort(code: "40001")
                return me.record
            }
        }
        commitCounter += 1
        var installed: [HistoryKey: Int] = [:]
        if kind != .noWriteLocks {
            for (key, w) in me.writes {
                let v = (committed[key]?.version ?? 0) + 1
                committed[key] = Cell(version: v, present: w.kind == .put, writer: id, writeIndex: w.count)
                installed[key] = v
            }
        }
        release(id)
        me.record.commit(order: commitCounter, installed: installed)
        return me.record
    }

    mutating func rollback(_ id: TxnID, code: String = "rollback") throws -> TransactionRecord {
        guard var me = active.removeValue(forKey: id) else { throw NotActive(id: id) }
        release(id)
        me.record.abort(code: code)
        return me.record
    }

    /// A step for a transaction the model does not know (a bug in the driver, reported as a test failure).
    struct NotActive: Error { var id: TxnID }

    /// Runs `body` on the active transaction `id`'s state.
    private mutating func withActive<R>(_ id: TxnID, _ body: (inout Active) throws -> R) throws -> R {
        guard var me = active[id] else { throw NotActive(id: id) }
        let result = try body(&me)
        active[id] = me
        return result
    }

    private func writesOf(_ id: TxnID) throws -> [HistoryKey: (kind: WriteKind, count: Int)] {
        guard let me = active[id] else { throw NotActive(id: id) }
        return me.writes
    }

    /// Drops the transaction's uncommitted writes and locks.
    private mutating func release(_ id: TxnID) {
        for key in uncommitted.keys { uncommitted[key]?.removeAll { $0.writer == id } }
        for key in locks.keys {
            if locks[key]?.exclusive == id { locks[key]?.exclusive = nil }
            locks[key]?.shared.remove(id)
        }
        failed.remove(id)
    }
}

/// One step of a random transaction program.
enum Step {
    case read(Int)
    case write(Int)
    case delete(Int)
    /// Keys `[from, from + count)`.
    case scan(from: Int, count: Int)
}

/// Random programs run by `ModelStore`, interleaved `concurrency` at a time.
struct Workload {
    var transactions = 200
    var concurrency = 4
    var keyCount = 6
    var maxSteps = 5
    var deletes = true
    var scans = true
    /// Probability that a finished program rolls back instead of committing.
    var rollbackRate = 0.1

    func program(rng: inout some RandomNumberGenerator) -> [Step] {
        var steps: [Step] = []
        for _ in 0..<Int.random(in: 1...maxSteps, using: &rng) {
            let k = Int.random(in: 0..<keyCount, using: &rng)
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<35: steps.append(.read(k))
            case 35..<65: steps.append(contentsOf: [.read(k), .write(k)])  // read-modify-write
            case 65..<80: steps.append(.write(k))
            case 80..<90 where scans: steps.append(.scan(from: k, count: Int.random(in: 1...3, using: &rng)))
            case 90..<95 where deletes: steps.append(.delete(k))
            default: steps.append(.write(k))
            }
        }
        return steps
    }

    /// Runs the workload on a fresh store of `kind` and returns what it recorded.
    func run(_ kind: ModelStore.Kind, seed: UInt64) throws -> History {
        var rng = SplitMix64(seed: seed)
        var store = ModelStore(kind: kind, keyCount: keyCount)
        let recorder = HistoryRecorder()
        var running: [(id: TxnID, steps: [Step], next: Int)] = []
        var started = 0
        while started < transactions || !running.isEmpty {
            if started < transactions && running.count < concurrency {
                let id = recorder.makeID()
                store.begin(id)
                running.append((id, program(rng: &rng), 0))
                started += 1
                continue
            }
            let i = Int.random(in: 0..<running.count, using: &rng)
            let (id, steps, next) = running[i]
            guard next < steps.count, !store.failed.contains(id) else {
                running.remove(at: i)
                let finished =
                    Double.random(in: 0..<1, using: &rng) < rollbackRate
                    ? try store.rollback(id) : try store.commit(id)
                try recorder.record(finished)
                continue
            }
            running[i].next += 1
            switch steps[next] {
            case .read(let k): try store.read(id, store.keys[k], rng: &rng)
            case .write(let k): try store.write(id, store.keys[k], .put)
            case .delete(let k): try store.write(id, store.keys[k], .delete)
            case .scan(let from, let count):
                let to = from + count
                try store.scan(
                    id, KeyRange(from: store.keys[from], to: to < keyCount ? store.keys[to] : nil), rng: &rng)
            }
        }
        return recorder.history
    }
}
