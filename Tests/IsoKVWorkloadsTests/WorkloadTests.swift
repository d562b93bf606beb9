import IsoKV
import IsoKVWorkloads
import Testing

/// Every workload, a bounded number of operations on the embedded engine, then the store checked for what the
/// workload must leave behind. Two tasks, so the transactions really conflict (and ThreadSanitizer sees the harness).
@Suite("Workloads on the engine Concurrent")
struct WorkloadConcurrentTests {
    static let tasks = 2
    static let opsPerTask = 150

    /// A fresh in-memory database loaded with `keys` keys.
    func setUp(keys: Int, distribution: KeyChooser.Distribution = .zipfian(theta: 0.99), valueSize: Int = 8)
        async throws -> (Database, Dataset)
    {
        let db = Database.inMemory()
        let data = Dataset(keyCount: keys, valueSize: valueSize, distribution: distribution)
        try await data.load(into: db, batchSize: 7)
        return (db, data)
    }

    func contents(_ db: Database) async throws -> [KeyValue] {
        try await db.transaction(.snapshot, readOnly: true) { tx in try await tx.scan() }
    }

    @Test("the loader stores every key and the counter")
    func loader() async throws {
        let (db, data) = try await setUp(keys: 20)
        let rows = try await contents(db)
        #expect(rows.count == 21)
        #expect(rows.first == KeyValue(key: Dataset.counterKey, value: "0"))
        #expect(Array(rows.dropFirst().map(\.key)) == data.keys)
        #expect(rows.dropFirst().allSatisfy { $0.value == data.value })
    }

    @Test("the loader gives every key a value buffer of its own (no reference count shared by all reads)")
    func loaderValuesAreSeparateBuffers() async throws {
        let db = Database.inMemory()
        let data = Dataset(keyCount: 50, valueSize: 100, distribution: .uniform)
        try await data.load(into: db)
        let values = try await db.transaction(.snapshot, readOnly: true) { tx in
            try await tx.scan(KeyRange(from: "user")).map(\.value)
        }
        #expect(values.count == 50 && values.allSatisfy { $0 == data.value })
        let buffers = Set(values.map { $0.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) } })
        let shared = data.value.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(buffers.count == 50 && !buffers.contains(shared))
    }

    @Test("the catalogue: unique names, every CLI workload, found by name")
    func catalogue() {
        let names = Workload<Database>.all.map(\.name)
        #expect(names == ["ycsb-a", "ycsb-b", "ycsb-c", "ycsb-e", "ycsb-f", "counter", "write-skew"])
        #expect(Workload<Database>.named("ycsb-e")?.name == "ycsb-e")
        #expect(Workload<Database>.named("ycsb-d") == nil)
        #expect(Workload<Database>.all.allSatisfy { !$0.description.isEmpty })
    }

    @Test(
        "ycsb-a, b, c, point reads: every operation one transaction (or none), keys and values unchanged",
        arguments: ["ycsb-a", "ycsb-b", "ycsb-c", "point-get", "tx-get"])
    func readUpdate(_ name: String) async throws {
        let (db, data) = try await setUp(keys: 32)
        let before = try await contents(db)
        let workload =
            [Workload<Database>.pointGet, .readOnlyTransactionGet].first { $0.name == name }
            ?? Workload<Database>.named(name)!
        let result = try await Harness(tasks: Self.tasks).measure(
            workload, on: WorkloadContext(store: db, data: data, isolation: .snapshot),
            .operations(perTask: Self.opsPerTask))
        #expect(result.operations == Self.tasks * Self.opsPerTask)
        if name.hasPrefix("ycsb") {
            #expect(result.counters.committed + result.counters.gaveUp == result.operations)
        } else {
            #expect(result.counters == OperationCounters(), "reads outside Worker.transaction count nothing")
        }
        #expect(result.counters.retries == result.counters.abortedAttempts - result.counters.gaveUp)
        #expect(try await contents(db) == before, "updates write the loaded value again")
    }

    @Test("ycsb-e: the inserted keys are all there, after the loaded ones")
    func ycsbE() async throws {
        let (db, data) = try await setUp(keys: 32)
        let result = try await Harness(tasks: Self.tasks).measure(
            Workload.ycsbE, on: WorkloadContext(store: db, data: data, isolation: .snapshot),
            .operations(perTask: Self.opsPerTask))
        #expect(result.counters.committed + result.counters.gaveUp == result.operations)
        let inserted = data.insertedKeyCount
        #expect(inserted > 0 && inserted < result.operations / 5, "about 5% inserts: \(inserted)")
        let rows = try await contents(db)
        #expect(rows.count == 1 + 32 + inserted)
        #expect(Array(rows.suffix(inserted).map(\.key)) == (32..<(32 + inserted)).map(Dataset.key))
    }

    @Test("ycsb-f: every committed read-modify-write is in the data (no lost update at snapshot)")
    func ycsbF() async throws {
        let (db, data) = try await setUp(keys: 8)  // few keys: the read-modify-writes conflict
        let result = try await Harness(tasks: Self.tasks).measure(
            Workload.ycsbF, on: WorkloadContext(store: db, data: data, isolation: .snapshot),
            .operations(perTask: Self.opsPerTask))
        // Replay each task's random stream: which of its operations were read-modify-writes.
        var rmw = 0
        for task in 0..<Self.tasks {
            var rng = SplitMix64(seed: Harness.taskSeed(0, task: task))
            for _ in 0..<Self.opsPerTask {
                if rng.next() % 100 >= 50 { rmw += 1 }
                _ = data.chooser.next(using: &rng)
            }
        }
        #expect(rmw > 0)
        let increments = try await contents(db).dropFirst().map { Int($0.value.bytes[0] &- UInt8(ascii: "v")) }
        #expect(
            increments.reduce(0, +) % 256 == (rmw - result.counters.gaveUp) % 256,
            "first bytes moved by \(increments.reduce(0, +)), committed read-modify-writes \(rmw - result.counters.gaveUp)"
        )
    }

    @Test("counter: the counter equals the committed increments", arguments: [IsolationLevel.snapshot, .serializable])
    func counter(_ level: IsolationLevel) async throws {
        let (db, data) = try await setUp(keys: 4)
        let result = try await Harness(tasks: Self.tasks).measure(
            Workload.counter, on: WorkloadContext(store: db, data: data, isolation: level),
            .operations(perTask: Self.opsPerTask))
        #expect(result.counters.committed + result.counters.gaveUp == result.operations)
        let counter = try await db.get(Dataset.counterKey)?.value.int64
        #expect(counter == Int64(result.counters.committed))
        #expect(result.counters.retries + result.counters.gaveUp == result.counters.abortedAttempts)
        #expect(Set(result.counters.aborts.keys).isSubset(of: ["40001", "40P01"]))
    }

    /// Two pairs and a floor of -3: a few hundred operations drive every pair to the floor, so a serializable run
    /// that let two takers of one pair commit would leave it below.
    @Test("write-skew at serializable: every pair reaches the floor and none goes below")
    func writeSkewSerializable() async throws {
        let (db, data) = try await setUp(keys: 4, distribution: .uniform)
        let floor: Int64 = -3
        let result = try await Harness(tasks: Self.tasks).measure(
            Workload.writeSkew(floor: floor), on: WorkloadContext(store: db, data: data, isolation: .serializable),
            .operations(perTask: Self.opsPerTask))
        #expect(result.counters.committed + result.counters.gaveUp == result.operations)
        #expect(try await WriteSkew.pairsBelowFloor(in: db, data, floor: floor).isEmpty)
        let totals = try await db.transaction(.snapshot, readOnly: true) { tx in
            var totals: [Int64] = []
            for p in 0..<2 {
                totals.append(
                    WriteSkew.amount(try await tx.get(data.keys[2 * p]))
                        + WriteSkew.amount(try await tx.get(data.keys[2 * p + 1])))
            }
            return totals
        }
        #expect(totals == [floor, floor])
    }

    @Test(
        "a catalogue workload's operation closure runs the same step as its harness loop",
        arguments: ["ycsb-a", "ycsb-e", "ycsb-f", "counter", "write-skew"])
    func operationMatchesLoop(_ name: String) async throws {
        let workload = try #require(Workload<Database>.named(name))
        // Through the harness: one task, seed 42, 60 steps.
        let (viaHarness, data1) = try await setUp(keys: 16)
        let result = try await Harness(tasks: 1).measure(
            workload, on: WorkloadContext(store: viaHarness, data: data1, isolation: .snapshot),
            .operations(perTask: 60), seed: 42)
        // By hand: the same worker, the closure called 60 times.
        let (byHand, data2) = try await setUp(keys: 16)
        let context = WorkloadContext(store: byHand, data: data2, isolation: .snapshot)
        var worker = Worker(task: 0, seed: Harness.taskSeed(42, task: 0), retry: Harness.benchmarkRetry)
        for _ in 0..<60 { try await workload.operation(context, &worker) }
        #expect(try await contents(byHand) == (try await contents(viaHarness)))
        #expect(worker.allCounters == result.counters)
        #expect(result.counters.committed == 60, "one transaction per step, none given up")
    }

    @Test("one task and one seed replay the same run: same final data")
    func reproducible() async throws {
        func run() async throws -> [KeyValue] {
            let (db, data) = try await setUp(keys: 16)
            let context = WorkloadContext(store: db, data: data, isolation: .snapshot)
            for workload in [Workload<Database>.ycsbF, .ycsbE, .writeSkew(floor: -5)] {
                _ = try await Harness(tasks: 1).measure(workload, on: context, .operations(perTask: 100), seed: 42)
            }
            return try await contents(db)
        }
        let first = try await run()
        #expect(try await run() == first)
    }
}
