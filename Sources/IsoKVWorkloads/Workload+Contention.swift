import IsoKVCore

// Workloads built to conflict: one hot key, and the write-skew shape that only serializable isolation prevents.

extension Workload {
    /// Read-modify-write of one hot key (``Dataset/counterKey``, a decimal integer): read it, write it + 1. At
    /// snapshot and above a concurrent increment makes one of the two fail (`40001`, retried); at read committed
    /// both may commit and an increment is lost. After a run, the counter moved by exactly the committed count
    /// unless updates were lost.
    @inlinable
    public static var counter: Workload {
        Workload(
            name: "counter", description: "read-modify-write of one hot key (+1 to a decimal counter)", Increment())
    }

    /// The step of ``counter``.
    @usableFromInline
    struct Increment: HarnessOperation {
        @inlinable
        init() {}

        @inlinable
        nonisolated(nonsending) func run(_ context: WorkloadContext<Store>, _ w: inout Worker) async throws {
            try await w.transaction(context.store, context.isolation) { tx in
                let n = try await tx.get(Dataset.counterKey)?.int64 ?? 0
                try await tx.put(Dataset.counterKey, Bytes(n + 1))
            }
        }
    }

    /// The doctors' shape on key pairs (see ``WriteSkew``): read both keys of a pair, take 1 from one of them if
    /// the pair's total stays ≥ `floor`. At snapshot two concurrent takers of the same pair may both commit and push
    /// the total below `floor` (write skew); at serializable one of them fails with `40001`.
    @inlinable
    public static func writeSkew(floor: Int64 = WriteSkew.defaultFloor) -> Workload {
        Workload(
            name: "write-skew",
            description:
                "read both keys of a pair, take 1 from one if the pair's sum stays >= \(floor) (the doctors' shape)",
            TakeFromPair(floor: floor))
    }

    /// The step of ``writeSkew(floor:)``.
    @usableFromInline
    struct TakeFromPair: HarnessOperation {
        @usableFromInline let floor: Int64

        @inlinable
        init(floor: Int64) { self.floor = floor }

        @inlinable
        nonisolated(nonsending) func run(_ context: WorkloadContext<Store>, _ w: inout Worker) async throws {
            let (a, b) = WriteSkew.pair(
                containing: context.data.chooser.next(using: &w.rng),
                keyCount: context.data.keys.count)
            let keyA = context.data.keys[a], keyB = context.data.keys[b]
            let mineIsA = w.rng.next() % 2 == 0
            try await w.transaction(context.store, context.isolation) { tx in
                let va = WriteSkew.amount(try await tx.get(keyA)), vb = WriteSkew.amount(try await tx.get(keyB))
                if va + vb - 1 >= floor { try await tx.put(mineIsA ? keyA : keyB, Bytes((mineIsA ? va : vb) - 1)) }
            }
        }
    }

    /// One single-key read outside any transaction (``KeyValueStore/get(_:)``): the cheapest read a backend
    /// offers, an in-memory reference for the transactional rows.
    @inlinable
    public static var pointGet: Workload {
        Workload(name: "point-get", description: "one get outside a transaction", PointGet())
    }

    /// The step of ``pointGet``.
    @usableFromInline
    struct PointGet: HarnessOperation {
        @inlinable
        init() {}

        @inlinable
        nonisolated(nonsending) func run(_ context: WorkloadContext<Store>, _ w: inout Worker) async throws {
            _ = try await context.store.get(context.data.randomKey(using: &w.rng))
        }
    }

    /// One read-only transaction at the context's isolation per read: begin, get, commit (no retry: a read-only
    /// transaction does not conflict). What a transaction costs over ``pointGet``.
    @inlinable
    public static var readOnlyTransactionGet: Workload {
        Workload(name: "tx-get", description: "begin (read-only), one get, commit", BeginGetCommit())
    }

    /// The step of ``readOnlyTransactionGet``.
    @usableFromInline
    struct BeginGetCommit: HarnessOperation {
        @inlinable
        init() {}

        @inlinable
        nonisolated(nonsending) func run(_ context: WorkloadContext<Store>, _ w: inout Worker) async throws {
            let key = context.data.randomKey(using: &w.rng)
            let tx = try await context.store.begin(context.isolation, readOnly: true)
            do {
                _ = try await tx.get(key)
                try await tx.commit()
            } catch {
                try? await tx.rollback()
                throw error
            }
        }
    }
}

/// The write-skew workload's pairs and its invariant.
///
/// Keys `2p` and `2p + 1` of the dataset form pair `p`, for `p` in `0..<keyCount/2` (with an odd key count the last
/// key is in no pair: a draw of it goes to the last pair). A key's amount is its value as a decimal
/// integer, 0 when absent or not decimal (the loaded YCSB values). The invariant: every pair's total ≥ floor.
public enum WriteSkew {
    /// The floor the CLI uses: far enough that a short run at snapshot rarely reaches it on a large dataset.
    public static let defaultFloor: Int64 = -1000

    /// The pair of key indices that `index` falls in.
    @inlinable
    public static func pair(containing index: Int, keyCount: Int) -> (Int, Int) {
        let p = Swift.min(index / 2, keyCount / 2 - 1)
        return (2 * p, 2 * p + 1)
    }

    /// A key's amount: its decimal value, or 0.
    @inlinable
    public static func amount(_ value: Bytes?) -> Int64 { value?.int64 ?? 0 }

    /// The pairs whose total is below `floor`, read in one read-only snapshot transaction (so at a consistent
    /// point): empty unless write skew happened.
    public static func pairsBelowFloor<Store: KeyValueStore>(in store: Store, _ data: Dataset, floor: Int64)
        async throws
        -> [(first: Bytes, second: Bytes, total: Int64)]
    {
        let keys = data.keys
        return try await store.transaction(.snapshot, readOnly: true) { tx in
            var below: [(first: Bytes, second: Bytes, total: Int64)] = []
            for p in 0..<(keys.count / 2) {
                let a = keys[2 * p], b = keys[2 * p + 1]
                let total = amount(try await tx.get(a)) + amount(try await tx.get(b))
                if total < floor { below.append((a, b, total)) }
            }
            return below
        }
    }
}
