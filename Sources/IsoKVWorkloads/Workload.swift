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
    /// One step, as a closure: for callers that run steps one by one (the harness runs them through the loop it was
    /// made with, which is the same step).
    public let operation:
        nonisolated(nonsending) @Sendable (_ context: WorkloadContext<Store>, _ worker: inout Worker) async throws ->
            Void
    /// The harness loop over this workload's step: ``Harness/measure(_:seed:passing:_:)`` specialized for the step's
    /// type, built where that type is known (the initializers), so that each step is a direct call.
    @usableFromInline
    let measureLoop:
        @Sendable (_ harness: Harness, _ context: WorkloadContext<Store>, _ length: RunLength, _ seed: UInt64)
            async throws -> HarnessResult

    /// A workload whose step is a closure: the harness calls the closure value once per step (an async frame and an
    /// executor hop after it, tens of nanoseconds: see ``init(name:description:_:)`` for a workload of cheap steps).
    /// Inlinable, as the other initializer is.
    @inlinable
    public init(
        name: String, description: String,
        operation:
            nonisolated(nonsending) @escaping @Sendable (_ context: WorkloadContext<Store>, _ worker: inout Worker)
            async throws
            -> Void
    ) {
        self.init(name: name, description: description, operation: operation, step: ClosureOperation(operation))
    }

    /// A workload whose step is `operation`, a value of a concrete type: the harness's loop is specialized for that
    /// type, so a step costs no call of a closure value. Inlinable, so that a caller that knows the store builds the
    /// loop specialized for it too.
    ///
    /// ```swift
    /// struct OneGet: HarnessOperation {
    ///     func run(_ context: WorkloadContext<Database>, _ worker: inout Worker) async throws {
    ///         _ = try await context.store.get(context.data.randomKey(using: &worker.rng))
    ///     }
    /// }
    /// let gets = Workload(name: "get", description: "one get", OneGet())
    /// ```
    @inlinable
    public init<Operation: HarnessOperation>(name: String, description: String, _ operation: Operation)
    where Operation.Argument == WorkloadContext<Store> {
        self.init(
            name: name, description: description,
            operation: { context, worker in try await operation.run(context, &worker) }, step: operation)
    }

    /// Both initializers: `operation` is `step` as a closure (for a closure workload, the closure itself, not
    /// wrapped).
    @inlinable
    init<Operation: HarnessOperation>(
        name: String, description: String,
        operation:
            nonisolated(nonsending) @escaping @Sendable (_ context: WorkloadContext<Store>, _ worker: inout Worker)
            async throws -> Void,
        step: Operation
    ) where Operation.Argument == WorkloadContext<Store> {
        self.name = name
        self.description = description
        self.operation = operation
        measureLoop = { harness, context, length, seed in
            try await harness.measure(length, seed: seed, passing: context, step)
        }
    }

    /// The YCSB and contention workloads, in the order the CLI lists them.
    @inlinable
    public static var all: [Workload] { [ycsbA, ycsbB, ycsbC, ycsbE, ycsbF, counter, writeSkew()] }

    /// The workload of ``all`` called `name`, if any.
    @inlinable
    public static func named(_ name: String) -> Workload? { all.first { $0.name == name } }
}
