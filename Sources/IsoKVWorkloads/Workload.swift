import IsoKVCore

/// What a workload runs on: a store, the dataset loaded into it, and the isolation level of its transactions.
public struct WorkloadContext<Store: KeyValueStore>: Sendable {
    public var store: Store
    public var data: Dataset
    public var isolation: IsolationLevel

    public init(store: Store, data: Dataset, isolation: IsolationLevel) {
        self.store = store
        self.data = data
        self.isolation = isolation
    }
}

/// A workload over the store contract: a name, a one-line description, and the `operation` one task runs per step
/// (one step = one operation of the harness's count; usually one transaction, retried inside through
/// ``Worker/transaction(_:_:readOnly:_:)``).
///
/// The catalogue (``all``): the YCSB core workloads A, B, C, E, F (``ycsbA`` …) and two contention shapes,
/// ``counter`` and ``writeSkew(floor:)``; and two point-read rows used as in-memory references, ``pointGet``
/// and ``readOnlyTransactionGet``. Every operation takes its choices from the worker's random stream only, so a run
/// with one task and a fixed seed is reproducible on a deterministic store.
///
/// ```swift
/// let data = Dataset(keyCount: 10_000)
/// try await data.load(into: db)
/// let context = WorkloadContext(store: db, data: data, isolation: .snapshot)
/// let result = try await Harness(tasks: 2).measure(Workload.ycsbB, on: context, .duration(.seconds(1)))
/// ```
public struct Workload<Store: KeyValueStore>: Sendable {
    public var name: String
    public var description: String
    public var operation:
        nonisolated(nonsending) @Sendable (_ context: WorkloadContext<Store>, _ worker: inout Worker) async throws ->
            Void

    public init(
        name: String, description: String,
        operation:
            nonisolated(nonsending) @escaping @Sendable (_ context: WorkloadContext<Store>, _ worker: inout Worker)
            async throws
            -> Void
    ) {
        self.name = name
        self.description = description
        self.operation = operation
    }

    /// The YCSB and contention workloads, in the order the CLI lists them.
    @inlinable
    public static var all: [Workload] { [ycsbA, ycsbB, ycsbC, ycsbE, ycsbF, counter, writeSkew()] }

    /// The workload of ``all`` called `name`, if any.
    @inlinable
    public static func named(_ name: String) -> Workload? { all.first { $0.name == name } }
}
