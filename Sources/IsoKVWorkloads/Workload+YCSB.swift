import IsoKVCore

// The YCSB core workloads (Cooper et al., "Benchmarking Cloud Serving Systems with YCSB", SoCC 2010), one
// operation = one transaction at the context's isolation level. Keys come from the dataset's chooser (scrambled
// Zipfian by default, as YCSB's `requestdistribution=zipfian`). YCSB-D (read latest) is not here: it needs a "latest"
// distribution over inserted keys.

extension Workload {
    /// A: 50% reads, 50% updates of one key.
    @inlinable
    public static var ycsbA: Workload {
        readUpdate("ycsb-a", readPercent: 50, "50% read, 50% update (one key each, each its own transaction)")
    }

    /// B: 95% reads, 5% updates.
    @inlinable
    public static var ycsbB: Workload {
        readUpdate("ycsb-b", readPercent: 95, "95% read, 5% update (read mostly)")
    }

    /// C: reads only.
    @inlinable
    public static var ycsbC: Workload {
        readUpdate("ycsb-c", readPercent: 100, "read only")
    }

    /// E: 95% short scans (1–100 keys from a key chosen by the distribution), 5% inserts of new keys.
    @inlinable
    public static var ycsbE: Workload {
        ycsbE(name: "ycsb-e", description: "95% scans of 1-100 keys from a chosen key, 5% inserts of new keys") {
            context, w, range, length in
            var rows = 0
            try await w.transaction(context.store, context.isolation, readOnly: true) { tx in
                rows = try await tx.scan(range, limit: length).count
            }
            return rows
        }
    }

    /// E with the scans made by `scan` (given the range from the chosen key and the number of rows wanted; it
    /// returns the rows it read): a store's own scan API in the same mix of key choices and inserts.
    ///
    /// ```swift
    /// let e = Workload<Database>.ycsbE(name: "ycsb-e", description: "scans through Database.read") {
    ///     context, _, range, limit in
    ///     try context.store.read { try $0.scan(range, limit: limit).count }
    /// }
    /// ```
    @inlinable
    public static func ycsbE(
        name: String, description: String,
        scan:
            nonisolated(nonsending) @escaping @Sendable (
                _ context: WorkloadContext<Store>, _ worker: inout Worker, _ range: KeyRange, _ limit: Int
            ) async throws -> Int
    ) -> Workload {
        Workload(name: name, description: description, ScanOrInsert(scan: scan))
    }

    /// The step of ``ycsbE(name:description:scan:)``: 95% scans through `scan`, 5% inserts of the next new key.
    @usableFromInline
    struct ScanOrInsert: HarnessOperation {
        /// The `scan` parameter's type of ``ycsbE(name:description:scan:)``.
        @usableFromInline typealias Scan =
            nonisolated(nonsending) @Sendable (
                _ context: WorkloadContext<Store>, _ worker: inout Worker, _ range: KeyRange, _ limit: Int
            ) async throws -> Int

        @usableFromInline let scan: Scan

        @inlinable
        init(scan: @escaping Scan) { self.scan = scan }

        @inlinable
        nonisolated(nonsending) func run(_ context: WorkloadContext<Store>, _ w: inout Worker) async throws {
            if w.rng.next() % 100 < 95 {
                let from = context.data.randomKey(using: &w.rng)
                let length = Int(w.rng.next() % 100) + 1
                let rows = try await scan(context, &w, KeyRange(from: from), length)
                w.counters.scans += 1
                w.counters.keysScanned += rows
            } else {
                let key = context.data.nextInsertKey()
                let value = context.data.value
                try await w.transaction(context.store, context.isolation) { tx in try await tx.put(key, value) }
            }
        }
    }

    /// F: 50% reads, 50% read-modify-writes (read a key, change its first byte, write it back, in one transaction).
    @inlinable
    public static var ycsbF: Workload {
        Workload(name: "ycsb-f", description: "50% read, 50% read-modify-write of one key", ReadModifyWrite())
    }

    /// The step of ``ycsbF``.
    @usableFromInline
    struct ReadModifyWrite: HarnessOperation {
        @inlinable
        init() {}

        @inlinable
        nonisolated(nonsending) func run(_ context: WorkloadContext<Store>, _ w: inout Worker) async throws {
            let roll = w.rng.next() % 100
            let key = context.data.randomKey(using: &w.rng)
            if roll < 50 {
                try await w.transaction(context.store, context.isolation, readOnly: true) { tx in
                    _ = try await tx.get(key)
                }
            } else {
                let initial = context.data.value
                try await w.transaction(context.store, context.isolation) { tx in
                    var value = try await tx.get(key) ?? initial
                    if !value.bytes.isEmpty { value.bytes[0] &+= 1 }
                    try await tx.put(key, value)
                }
            }
        }
    }

    /// `readPercent` % read-only transactions reading one key, the rest read-write transactions overwriting one key.
    @inlinable
    static func readUpdate(_ name: String, readPercent: UInt64, _ description: String) -> Workload {
        Workload(name: name, description: description, ReadOrUpdate(readPercent: readPercent))
    }

    /// The step of ``readUpdate(_:readPercent:_:)``.
    @usableFromInline
    struct ReadOrUpdate: HarnessOperation {
        @usableFromInline let readPercent: UInt64

        @inlinable
        init(readPercent: UInt64) { self.readPercent = readPercent }

        @inlinable
        nonisolated(nonsending) func run(_ context: WorkloadContext<Store>, _ w: inout Worker) async throws {
            let roll = w.rng.next() % 100
            let key = context.data.randomKey(using: &w.rng)
            if roll < readPercent {
                try await w.transaction(context.store, context.isolation, readOnly: true) { tx in
                    _ = try await tx.get(key)
                }
            } else {
                let value = context.data.value
                try await w.transaction(context.store, context.isolation) { tx in try await tx.put(key, value) }
            }
        }
    }
}
