import ConcurrentMaps
import IsoKVCore

extension Database {
    /// Runs `body` synchronously against one snapshot of the database and returns what it returns.
    ///
    /// The snapshot is the newest published commit when `read` starts; every read through it sees exactly the
    /// commits up to that one, whatever commits meanwhile (as a `.snapshot` read-only transaction does). It is
    /// the cheapest way to read: no transaction object, no async call, no lock — committed versions are read
    /// lock-free, and the snapshot is registered in a lock-free slot so that garbage collection keeps what it
    /// sees. `read` never waits for a writer or a row lock, so it may run on any thread, a cooperative one
    /// included; keep `body` short, since versions it can see are kept until it returns.
    ///
    /// ```swift
    /// let (alice, bob) = try db.read { snapshot in
    ///     (try snapshot.get("alice"), try snapshot.get("bob"))   // one consistent state of both keys
    /// }
    /// let recent = try db.read { try $0.scan(.prefix("orders/"), limit: 20) }
    /// ```
    ///
    /// The snapshot cannot escape `body` (it is borrowed and not copyable). Writes, row locks and serializable
    /// reads need a ``Transaction`` (``begin(_:readOnly:)`` or `transaction {}`).
    public func read<R, E: Error>(_ body: (borrowing ReadSnapshot) throws(E) -> R) throws(E) -> R {
        let registration = registerRead()
        defer { unregisterRead(registration) }
        return try body(ReadSnapshot(database: .passUnretained(self), sequence: registration.sequence))
    }

    /// Runs `body` against one snapshot of the database, as ``read(_:)`` does, and returns what it returns;
    /// `body` may suspend. The lightest read-only transaction an async caller can hold across an `await`: no
    /// transaction object and no reference to the database are made, and there is one async call per
    /// transaction, not one per read (the snapshot's reads are synchronous).
    ///
    /// ```swift
    /// let (order, customer) = try await db.withSnapshot { snapshot in
    ///     let order = try snapshot.get("orders/17")
    ///     await Task.yield()                           // other work; the snapshot still sees the same state
    ///     return (order, try snapshot.get("customers/3"))
    /// }
    /// ```
    ///
    /// Versions the snapshot can see are kept from garbage collection until `body` returns, so do not hold it
    /// across long waits. Writes, row locks and serializable reads need a ``Transaction``.
    @inlinable
    nonisolated(nonsending) public func withSnapshot<R, E: Error>(
        _ body: nonisolated(nonsending) (borrowing ReadSnapshot) async throws(E) -> R
    ) async throws(E) -> R {
        let registration = registerRead()
        defer { unregisterRead(registration) }
        return try await body(ReadSnapshot(database: .passUnretained(self), sequence: registration.sequence))
    }

    /// A snapshot registered for ``read(_:)`` or ``withSnapshot(_:)``, with where it was registered.
    @usableFromInline
    struct ReadRegistration {
        /// The snapshot's commit sequence number.
        @usableFromInline let sequence: UInt64
        /// Its ``SnapshotSlots`` slot, or -1 (registered in stripe `liveStripe` of the locked registry).
        let slot: Int
        /// The cell of `LiveTransactions.open` it is counted in (the registering thread's).
        let liveStripe: Int
    }

    /// Registers a snapshot of the newest published commit (lock-free: a slot from the registering thread's
    /// hint) and counts it as a live transaction. End it with ``unregisterRead(_:)``, on any thread.
    @usableFromInline
    func registerRead() -> ReadRegistration {
        let thread = ThreadStripe.current()
        let liveStripe = thread & (Oracle.stripeCount - 1)
        liveRef._withUnsafeGuaranteedRef { $0.began(stripe: liveStripe) }
        let (sequence, slot) = oracleRef._withUnsafeGuaranteedRef {
            $0.registerSnapshotFast(hint: thread, stripe: liveStripe)
        }
        return ReadRegistration(sequence: sequence, slot: slot, liveStripe: liveStripe)
    }

    /// Ends `registration`; a garbage collection sweep follows if the horizon may have moved past a backlog.
    @usableFromInline
    func unregisterRead(_ registration: ReadRegistration) {
        let advanced = oracleRef._withUnsafeGuaranteedRef {
            $0.unregisterSnapshotFast(registration.sequence, slot: registration.slot, stripe: registration.liveStripe)
        }
        liveRef._withUnsafeGuaranteedRef { $0.ended(txid: 0, stripe: registration.liveStripe) }
        gcRef._withUnsafeGuaranteedRef {
            $0.afterTransaction(touched: [], horizonAdvanced: advanced, released: registration.sequence, in: self)
        }
    }

    /// The committed rows of `range` visible at the registered `snapshot`, appended to `out` until it holds
    /// `max`: the walk of a plain scan by a reader with no pending write (a ``ReadSnapshot``, or a transaction
    /// that wrote nothing). Each row's value shares its version node (one reference count per row).
    func scanCommitted(_ range: KeyRange, snapshot: UInt64, max: Int, reverse: Bool, into out: inout [KeyValue]) {
        visitCommitted(range, snapshot: snapshot, reverse: reverse) { key, row in
            switch row {
            case .node(let node):
                out.append(KeyValue(key: key, value: node._withUnsafeGuaranteedRef { Bytes(sharing: $0) }))
            case .copied(let value): out.append(KeyValue(key: key, value: value))
            }
            return out.count < max
        }
    }

    /// A visible row as ``visitCommitted(_:snapshot:reverse:_:)`` finds it.
    enum VisibleRow {
        /// The version node holding the value (not a deletion), lent: valid inside the index's epoch only.
        case node(Unmanaged<VersionNode>)
        /// The value read under the chain's mutex, for a chain retired during the walk.
        case copied(Bytes)
    }

    /// Calls `row` with each committed row of `range` visible at the registered `snapshot`, in key order
    /// (descending when `reverse`), until it returns false. The published index is walked in place inside its
    /// epoch, and each entry's chain is read through the entry (no directory lookup, no lock, no reference
    /// count); a chain retired meanwhile is looked up again (`.copied`).
    @inline(__always)
    func visitCommitted(
        _ range: KeyRange, snapshot: UInt64, reverse: Bool, _ row: (Bytes, VisibleRow) throws -> Bool
    ) rethrows {
        try index.read { idx in
            if !reverse {
                // By groups of entries: load every chain's head, then every visible node, then hand out the rows,
                // so that the cache misses of a group overlap instead of queueing behind each row's work (a
                // reference count is an atomic write, which orders the loads after it).
                try idx.forEachRunInPlace(in: range) { run in
                    try visitGroups(run, snapshot: snapshot, row)
                }
                return
            }
            try idx.forEachInPlace(in: range, after: nil, reverse: true) { lent in
                // The entry is read where it lies: no copy, so no reference count written.
                let head = KeyChain.headWord(lentAt: lent.pointer(to: \.value)!)
                return try visit(lent.pointee.key, KeyChain.visibleNode(head: head, at: snapshot), snapshot, row)
            }
        }
    }

    /// One entry's row: `found` is `visibleNode`'s answer (`.none`: the chain was retired).
    @inline(__always)
    private func visit(
        _ key: Bytes, _ found: Unmanaged<VersionNode>??, _ snapshot: UInt64, _ row: (Bytes, VisibleRow) throws -> Bool
    ) rethrows -> Bool {
        switch found {
        case .none:
            guard let value = read(key, txid: 0, snapshot: snapshot, dirty: false) else { return true }
            return try row(key, .copied(value))
        case .some(.none): return true
        case .some(.some(let node)):
            if node._withUnsafeGuaranteedRef({ $0.isTombstone }) { return true }
            return try row(key, .node(node))
        }
    }

    /// The rows of `run` (index entries lent in place) visible at `snapshot`, by groups of 8; returns whether the
    /// walk goes on. Inside the index's epoch.
    @inline(__always)
    private func visitGroups(
        _ run: UnsafeBufferPointer<OrderedIndex<KeyChain>.Entry>, snapshot: UInt64,
        _ row: (Bytes, VisibleRow) throws -> Bool
    ) rethrows -> Bool {
        let group = 8
        return try withUnsafeTemporaryAllocation(of: UInt.self, capacity: group) { heads in
            var start = 0
            while start < run.count {
                let n = Swift.min(group, run.count - start)
                for k in 0..<n {
                    heads[k] = KeyChain.headWord(lentAt: (run.baseAddress! + start + k).pointer(to: \.value)!)
                }
                for k in 0..<n {
                    switch KeyChain.visibleNode(head: heads[k], at: snapshot) {
                    case .some(let node): heads[k] = node.map { UInt(bitPattern: $0.toOpaque()) } ?? 0
                    case .none: heads[k] = HeadWord.retiredBit  // retired: looked up in `visit`
                    }
                }
                for k in 0..<n {
                    let found: Unmanaged<VersionNode>?? =
                        heads[k] == HeadWord.retiredBit ? .none : .some(HeadWord.node(heads[k]))
                    guard try visit(run[start + k].key, found, snapshot, row) else { return false }
                }
                start += n
            }
            return true
        }
    }
}

/// One registered snapshot of a ``Database``, lent to the body of ``Database/read(_:)`` or
/// ``Database/withSnapshot(_:)``: synchronous reads of the committed state at ``sequence``.
///
/// ```swift
/// let total = try db.read { snapshot in
///     try snapshot.scan(.prefix("accounts/")).reduce(0) { $0 + ($1.value.int64 ?? 0) }
/// }
/// ```
///
/// Not copyable and only ever borrowed, so it cannot outlive the call that registered it (which is what keeps
/// the versions it reads from garbage collection).
public struct ReadSnapshot: ~Copyable {
    /// Unretained: the database outlives the `read` call that lends this value.
    @usableFromInline let database: Unmanaged<Database>
    /// The newest commit sequence number this snapshot sees (versions are commit sequence numbers).
    public let sequence: UInt64

    @usableFromInline
    init(database: Unmanaged<Database>, sequence: UInt64) {
        self.database = database
        self.sequence = sequence
    }

    /// The value of `key` at this snapshot, or nil if it is absent or deleted there.
    ///
    /// Throws `22023` for an empty key and `54000` for one longer than the database's `maxKeySize`.
    public func get(_ key: Bytes) throws -> Bytes? {
        try database._withUnsafeGuaranteedRef { db throws -> Bytes? in
            try db.limits.check(key: key)
            return db.readAtSnapshot(key, sequence, txid: 0)
        }
    }

    /// The rows of `range` at this snapshot in key order (descending when `reverse`), at most `limit` of them
    /// (nil: the database's `maxScanLimit`).
    ///
    /// Throws `22023` for a negative `limit` or one above `maxScanLimit`.
    public func scan(_ range: KeyRange, limit: Int? = nil, reverse: Bool = false) throws -> [KeyValue] {
        try database._withUnsafeGuaranteedRef { db throws -> [KeyValue] in
            let max = try db.limits.scanRows(limit)
            if max == 0 { return [] }
            var out: [KeyValue] = []
            out.reserveCapacity(Swift.min(max, 128))  // (a short scan fills it without growing)
            db.scanCommitted(range, snapshot: sequence, max: max, reverse: reverse, into: &out)
            return out
        }
    }

    /// Calls `body` with each row of `range` at this snapshot in key order (descending when `reverse`), at most
    /// `limit` of them (nil: the database's `maxScanLimit`), until `body` returns false; returns how many rows it
    /// was given. The value is lent in place — no copy, no reference count — and valid only during the call
    /// (copy it, e.g. `Bytes(value)`, to keep it): the cheapest scan, as an LMDB cursor is.
    ///
    /// ```swift
    /// let bytes = try db.read { s in
    ///     var total = 0
    ///     try s.forEach(.prefix("logs/"), limit: 1000) { _, value in total += value.count; return true }
    ///     return total
    /// }
    /// ```
    ///
    /// Throws `22023` for a negative `limit` or one above `maxScanLimit`, and whatever `body` throws.
    @discardableResult
    public func forEach(
        _ range: KeyRange, limit: Int? = nil, reverse: Bool = false,
        _ body: (_ key: Bytes, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws -> Int {
        try database._withUnsafeGuaranteedRef { db throws -> Int in
            let max = try db.limits.scanRows(limit)
            var rows = 0
            if max == 0 { return 0 }
            try db.visitCommitted(range, snapshot: sequence, reverse: reverse) { key, row in
                rows += 1
                let more =
                    switch row {
                    case .node(let node):
                        try node._withUnsafeGuaranteedRef { try $0.withUnsafeBytes { try body(key, $0) } }
                    case .copied(let value): try value.withUnsafeBytes { try body(key, $0) }
                    }
                return more && rows < max
            }
            return rows
        }
    }
}
