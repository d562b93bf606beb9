/// The Direct Serialization Graph of a history's committed transactions, plus the single-read findings (G1a, G1b,
/// lost update, garbage reads) met while building it.
///
/// Built once by ``init(_:)``; read-only afterwards. Nodes are committed transactions numbered `0..<nodeCount` in
/// recording order; aborted transactions are not nodes (Adya: the DSG only has committed transactions).
struct DependencyGraph {
    /// One edge; a trivial (retain-free) value so the graph walks copy it cheaply.
    /// Invariant: `from != to` (no self-loops) and no two edges share `(from, to, kind)`.
    struct Edge {
        var from: Int32
        var to: Int32
        var kind: DependencyKind
        /// Index into `keys`.
        var key: Int32
        /// For `.rwPredicate`, index into `ranges` (the scan's effective range); -1 otherwise.
        var range: Int32
    }

    /// Node → transaction id.
    private(set) var ids: [TxnID] = []
    /// All edges, in creation order; `adjStart`/`edgeOrder` index them by source node.
    private(set) var edges: [Edge] = []
    /// CSR adjacency: edges leaving node `n` are `edgeOrder[adjStart[n]..<adjStart[n + 1]]`.
    private(set) var adjStart: [Int32] = []
    private(set) var edgeOrder: [Int32] = []
    /// Interned keys; `Edge.key` indexes this.
    private(set) var keys: [HistoryKey] = []
    /// Scanned ranges of predicate edges; `Edge.range` indexes this.
    private(set) var ranges: [KeyRange] = []
    /// G1a, G1b, lost-update, garbage-read and duplicate-version findings.
    private(set) var findings: [Anomaly] = []
    private(set) var stats = HistoryStats()

    var nodeCount: Int { ids.count }

    /// The largest history the graph can number (node numbers are packed in 30 bits for edge deduplication).
    static let maxTransactions = 1 << 30

    // MARK: - Building

    /// One committed write in a key's version chain.
    private struct Version {
        /// Sort key of the chain: the installed version, or the commit order when versions are missing.
        var order: Int
        /// The installed version, if recorded.
        var version: Int?
        var node: Int32
        var kind: WriteKind
    }

    /// A committed transaction's last write of one key.
    private struct FinalWrite {
        var key: Int32
        /// How many times the transaction wrote the key (its last write is number `count`).
        var count: Int
        /// Position in the key's chain, set once chains are sorted.
        var position: Int = -1
    }

    /// Where a read landed in a key's chain.
    private enum Resolution {
        /// Chain position `p` (-1: the state before the first recorded version); `intermediate` when the write read
        /// was not its writer's last write of the key (G1b).
        case position(Int, intermediate: Bool)
        /// The reader's own write: no edge.
        case own
        /// A finding already recorded (aborted or garbage read): no edge.
        case rejected
    }

    private var keyIndex: [HistoryKey: Int32] = [:]
    /// Per key: one entry per committed writer of the key (its last write), sorted in version order once built.
    private var chains: [[Version]] = []
    /// Per key: installed version → chain position.
    private var positionOfVersion: [[Int: Int]] = []
    /// Per key: smallest installed version, or nil if none recorded.
    private var minVersion: [Int?] = []
    /// Per key: whether a committed transaction deleted it (absent reads are then ambiguous without a version).
    private var hasDelete: [Bool] = []
    /// Per node: its last write of each key it wrote.
    private var finalWrites: [[FinalWrite]] = []
    /// Transaction id → node (committed only).
    private var nodeOfID: [TxnID: Int32] = [:]
    /// Transaction id → record index, for every recorded transaction (aborted readers' writers are looked up here).
    private var recordOfID: [TxnID: Int] = [:]
    /// `(from << 34) | (to << 2) | kind` of every edge, to merge duplicates.
    private var edgeSet: Set<UInt64> = []
    /// Lost-update candidates: key → read position → committed readers that also wrote the key.
    private var readersThatWrote: [Int32: [Int: [Int32]]] = [:]

    init(_ history: History) throws(HistoryError) {
        let txns = history.transactions
        stats.transactions = txns.count
        try indexTransactions(txns)
        try buildChains(txns)
        for t in txns {
            guard let node = nodeOfID[t.id] else { continue }
            addReadEdges(of: t, node: node, txns: txns)
        }
        addLostUpdates()
        for (kind, n) in countByKind() { stats.edges[kind.rawValue] = n }
        buildAdjacency()
    }

    private mutating func intern(_ key: HistoryKey) -> Int32 {
        if let k = keyIndex[key] { return k }
        let k = Int32(keys.count)
        keys.append(key)
        keyIndex[key] = k
        chains.append([])
        positionOfVersion.append([:])
        minVersion.append(nil)
        hasDelete.append(false)
        return k
    }

    private mutating func indexTransactions(_ txns: [TransactionRecord]) throws(HistoryError) {
        // Node numbers are Int32 and the edge dedup code packs them in 30 bits.
        guard txns.count < DependencyGraph.maxTransactions else { throw .tooLarge(txns.count) }
        for (i, t) in txns.enumerated() {
            guard let outcome = t.outcome else { throw .noOutcome(t.id) }
            guard recordOfID[t.id] == nil else { throw .duplicateTransaction(t.id) }
            recordOfID[t.id] = i
            if outcome.isCommitted {
                nodeOfID[t.id] = Int32(ids.count)
                ids.append(t.id)
                stats.committed += 1
            } else {
                stats.aborted += 1
            }
        }
        finalWrites = Array(repeating: [], count: ids.count)
    }

    /// Builds every key's version chain from the committed transactions' last writes.
    private mutating func buildChains(_ txns: [TransactionRecord]) throws(HistoryError) {
        for t in txns {
            guard let node = nodeOfID[t.id], case .committed(let order) = t.outcome else { continue }
            // Last write of each key, in first-write order.
            var slot: [Int32: Int] = [:]
            var writes: [(key: Int32, count: Int, kind: WriteKind, installed: Int?)] = []
            for op in t.operations {
                guard case .write(let key, let kind, let installed) = op else { continue }
                let k = intern(key)
                if let s = slot[k] {
                    writes[s].count += 1
                    writes[s].kind = kind
                    writes[s].installed = installed ?? writes[s].installed
                } else {
                    slot[k] = writes.count
                    writes.append((k, 1, kind, installed))
                }
            }
            for w in writes {
                if let v = w.installed, v <= 0 {
                    throw .invalidValue(txn: t.id, "installed version \(v) of \(keys[Int(w.key)]) is not positive")
                }
                chains[Int(w.key)].append(
                    Version(
                        order: w.installed ?? order ?? Int.min, version: w.installed,
                        node: node, kind: w.kind))
                finalWrites[Int(node)].append(FinalWrite(key: w.key, count: w.count))
            }
        }
        for k in chains.indices where !chains[k].isEmpty {
            let byVersion = chains[k].allSatisfy { $0.version != nil }
            if !byVersion {
                // Fall back to commit order, which must then be known for every writer of the key.
                for j in chains[k].indices {
                    let id = ids[Int(chains[k][j].node)]
                    guard case .committed(let order?) = txns[recordOfID[id]!].outcome else {
                        throw .unorderedWrites(key: keys[k], txn: id)
                    }
                    chains[k][j].order = order
                }
            }
            chains[k].sort { ($0.order, $0.node) < ($1.order, $1.node) }
            for (p, v) in chains[k].enumerated() {
                if let version = v.version {
                    if let other = positionOfVersion[k][version] {
                        let a = ids[Int(chains[k][other].node)], b = ids[Int(v.node)]
                        findings.append(
                            Anomaly(
                                phenomenon: .duplicateVersion, transactions: [a, b],
                                explanation: "T\(a) and T\(b) both installed version \(version) of \(keys[k])"))
                    } else {
                        positionOfVersion[k][version] = p
                    }
                    minVersion[k] = min(minVersion[k] ?? version, version)
                }
                if v.kind == .delete { hasDelete[k] = true }
                if let f = finalWrites[Int(v.node)].firstIndex(where: { $0.key == Int32(k) }) {
                    finalWrites[Int(v.node)][f].position = p
                }
            }
            // ww: each version's writer precedes the next version's writer.
            for p in chains[k].indices.dropLast() {
                addEdge(chains[k][p].node, chains[k][p + 1].node, .ww, key: Int32(k), range: nil)
            }
        }
    }

    private mutating func addEdge(_ from: Int32, _ to: Int32, _ kind: DependencyKind, key: Int32, range: KeyRange?) {
        guard from != to else { return }
        let code = (UInt64(from) << 34) | (UInt64(to) << 2) | UInt64(kind.bit.trailingZeroBitCount)
        guard edgeSet.insert(code).inserted else { return }
        var rangeIndex: Int32 = -1
        if let range {
            if ranges.last != range { ranges.append(range) }  // one scan adds its edges together
            rangeIndex = Int32(ranges.count - 1)
        }
        edges.append(Edge(from: from, to: to, kind: kind, key: key, range: rangeIndex))
    }

    private func finalWrite(of node: Int32, key: Int32) -> FinalWrite? {
        finalWrites[Int(node)].first { $0.key == key }
    }

    /// Places an observation of `key` by committed `reader` in the key's chain, recording G1a / G1b / garbage
    /// findings on the way.
    private mutating func resolve(
        _ observed: Observed, key: Int32, reader: Int32, txns: [TransactionRecord]
    ) -> Resolution {
        let readerID = ids[Int(reader)]
        let keyName = keys[Int(key)]
        func garbage(_ why: String) -> Resolution {
            findings.append(
                Anomaly(
                    phenomenon: .garbageRead, transactions: [readerID],
                    explanation: "T\(readerID) read \(keyName): \(why)"))
            return .rejected
        }
        switch observed {
        case .initial, .version(0):
            return .position(-1, intermediate: false)
        case .absent:
            if hasDelete[Int(key)] {
                stats.ambiguousAbsentReads += 1
                return .rejected
            }
            return .position(-1, intermediate: false)
        case .version(let v):
            if v < 0 { return garbage("negative version \(v)") }
            if let p = positionOfVersion[Int(key)][v] {
                return chains[Int(key)][p].node == reader ? .own : .position(p, intermediate: false)
            }
            if let lowest = minVersion[Int(key)], v > lowest {
                return garbage("version \(v), which no recorded transaction installed")
            }
            return .position(-1, intermediate: false)  // a version from before the recorded history
        case .writer(let w, let index):
            if w == readerID { return .own }
            guard let r = recordOfID[w] else { return garbage("a write of T\(w), which is not in the history") }
            let writer = txns[r]
            let count = writer.writeCount(of: keyName)
            guard count > 0 else { return garbage("a write of T\(w), which never wrote it") }
            if let index, index < 1 || index > count {
                return garbage("write #\(index) of T\(w), which wrote it \(count) time(s)")
            }
            guard let node = nodeOfID[w], let fw = finalWrite(of: node, key: key) else {
                let code = if case .aborted(let c) = writer.outcome { c } else { "?" }
                findings.append(
                    Anomaly(
                        phenomenon: .g1a, transactions: [readerID, w],
                        explanation: "T\(readerID) read \(keyName) written by T\(w), which aborted (\(code))"))
                return .rejected
            }
            let intermediate = index.map { $0 < count } ?? false
            if intermediate {
                findings.append(
                    Anomaly(
                        phenomenon: .g1b, transactions: [readerID, w],
                        explanation: "T\(readerID) read write #\(index!) of \(keyName) by T\(w), "
                            + "which wrote it \(count) times (intermediate read)"))
            }
            return .position(fw.position, intermediate: intermediate)
        }
    }

    /// Adds the wr and item-rw edges of one item read at chain position `p`.
    private mutating func addItemRead(key: Int32, position p: Int, observed: Observed, reader: Int32) {
        let chain = chains[Int(key)]
        if p >= 0 { addEdge(chain[p].node, reader, .wr, key: key, range: nil) }
        if p + 1 < chain.count { addEdge(reader, chain[p + 1].node, .rw, key: key, range: nil) }
        if finalWrite(of: reader, key: key) != nil {
            // Group reads by the version they saw: a chain position, or -1 - v for a version v from before the
            // recorded history (distinct pre-history versions are distinct versions).
            var group = p
            if p < 0, case .version(let v) = observed { group = -1 - v }  // .initial, .absent: -1, version 0
            readersThatWrote[key, default: [:]][group, default: []].append(reader)
        }
    }

    /// Derives the edges of every read and scan of one committed transaction.
    private mutating func addReadEdges(of t: TransactionRecord, node: Int32, txns: [TransactionRecord]) {
        // Keys this transaction has written so far: a later scan sees its own write there, not another version.
        var wroteBefore = Set<Int32>()
        for op in t.operations {
            switch op {
            case .write(let key, _, _):
                wroteBefore.insert(intern(key))
            case .read(let key, let observed):
                let k = intern(key)
                if case .position(let p, _) = resolve(observed, key: k, reader: node, txns: txns) {
                    addItemRead(key: k, position: p, observed: observed, reader: node)
                }
            case .scan(let range, let limit, let reverse, let results, let absent):
                addScan(
                    range: effectiveRange(range, limit: limit, reverse: reverse, results: results),
                    results: results, absent: absent, reader: node, wroteBefore: wroteBefore, txns: txns)
            }
        }
    }

    /// The part of the key space a scan actually covered: a scan stopped by its limit covers only up to (forward)
    /// or down to (reverse) its last returned key.
    private func effectiveRange(_ range: KeyRange, limit: Int?, reverse: Bool, results: [ScanEntry]) -> KeyRange? {
        guard let limit else { return range }
        if limit <= 0 { return nil }
        guard results.count >= limit, let lo = results.map(\.key).min(), let hi = results.map(\.key).max() else {
            return range
        }
        var r = range
        if reverse { r.lower = lo } else { r.upper = hi; r.upperInclusive = true }
        return r
    }

    private mutating func addScan(
        range: KeyRange?, results: [ScanEntry], absent: [ScanEntry], reader: Int32, wroteBefore: Set<Int32>,
        txns: [TransactionRecord]
    ) {
        var seen = Set<Int32>()
        // Returned keys: item reads.
        for e in results {
            let k = intern(e.key)
            seen.insert(k)
            if case .position(let p, _) = resolve(e.observed, key: k, reader: reader, txns: txns) {
                addItemRead(key: k, position: p, observed: e.observed, reader: reader)
            }
        }
        guard let range else { return }
        // Keys the scan saw as absent: those it listed with a version first, then every other written key of the
        // range. Keys the reader had already written itself are skipped: there the scan saw its own write (or
        // delete), which says nothing about other transactions.
        var absentAt: [Int32: Int] = [:]
        for e in absent where e.observed != .absent {
            let k = intern(e.key)
            guard !seen.contains(k), !wroteBefore.contains(k) else { continue }
            if case .position(let p, _) = resolve(e.observed, key: k, reader: reader, txns: txns) {
                absentAt[k] = p
            }
            seen.insert(k)
        }
        for k in keysWritten(in: range) where !seen.contains(k) && !wroteBefore.contains(k) {
            // Which absent version did the scan see? Without deletes in the chain it can only be the initial state.
            if hasDelete[Int(k)] {
                stats.ambiguousAbsentReads += 1
                continue
            }
            absentAt[k] = -1
        }
        for (k, p) in absentAt {
            let chain = chains[Int(k)]
            if p >= 0 { addEdge(chain[p].node, reader, .wr, key: k, range: nil) }
            // The first later version that makes the key present changes what the scan would return.
            if let q = chain[(p + 1)...].firstIndex(where: { $0.kind == .put }) {
                addEdge(reader, chain[q].node, .rwPredicate, key: k, range: range)
            }
        }
    }

    /// Keys with committed versions inside `range`, via a sorted index built on first use.
    private var sortedWritten: [(key: HistoryKey, index: Int32)]?

    private mutating func keysWritten(in range: KeyRange) -> [Int32] {
        if sortedWritten == nil {
            sortedWritten = chains.indices.filter { !chains[$0].isEmpty }
                .map { (keys[$0], Int32($0)) }
                .sorted { $0.key < $1.key }
        }
        let sorted = sortedWritten!
        // First key >= lower.
        var lo = 0, hi = sorted.count
        if let lower = range.lower {
            while lo < hi {
                let mid = (lo + hi) / 2
                if sorted[mid].key < lower { lo = mid + 1 } else { hi = mid }
            }
        }
        var out: [Int32] = []
        var i = lo
        while i < sorted.count, range.contains(sorted[i].key) {
            out.append(sorted[i].index)
            i += 1
        }
        return out
    }

    /// Two committed transactions that read the same version of a key and both wrote the key lost an update.
    private mutating func addLostUpdates() {
        for (k, byPosition) in readersThatWrote.sorted(by: { $0.key < $1.key }) {
            for (p, readers) in byPosition.sorted(by: { $0.key < $1.key }) {
                var unique: [Int32] = []
                for r in readers where !unique.contains(r) { unique.append(r) }
                guard unique.count >= 2 else { continue }
                let chain = chains[Int(k)]
                let version =
                    if p >= 0 {
                        chain[p].version.map { "version \($0)" } ?? "the version of T\(ids[Int(chain[p].node)])"
                    } else if p == -1 {
                        "the initial version"
                    } else {
                        "version \(-1 - p)"
                    }
                let txnIDs = unique.map { ids[Int($0)] }
                findings.append(
                    Anomaly(
                        phenomenon: .lostUpdate, transactions: txnIDs,
                        explanation: txnIDs.map { "T\($0)" }.joined(separator: ", ")
                            + " all read \(version) of \(keys[Int(k)]) and all wrote it"))
            }
        }
    }

    private func countByKind() -> [DependencyKind: Int] {
        var n: [DependencyKind: Int] = [:]
        for e in edges { n[e.kind, default: 0] += 1 }
        return n
    }

    private mutating func buildAdjacency() {
        var start = [Int32](repeating: 0, count: nodeCount + 1)
        for e in edges { start[Int(e.from) + 1] += 1 }
        for i in 0..<nodeCount { start[i + 1] += start[i] }
        var fill = start
        var order = [Int32](repeating: 0, count: edges.count)
        for (i, e) in edges.enumerated() {
            order[Int(fill[Int(e.from)])] = Int32(i)
            fill[Int(e.from)] += 1
        }
        adjStart = start
        edgeOrder = order
        edgeSet = []
        readersThatWrote = [:]
    }
}
