import IsoKVSync
import IsoKVWorkloads
import Testing

/// The harness with no store: exact operation counts, sampling, seeds, the interleaving order.
@Suite("Workloads harness Concurrent")
struct HarnessConcurrentTests {
    @Test("an operation-count run does exactly tasks × n operations and times one in sampleEvery")
    func operationCount() async throws {
        let calls = Locked(0)
        let harness = Harness(tasks: 3, sampleEvery: 4)
        let result = try await harness.measure(.operations(perTask: 50)) { _ in calls.withLock { $0 += 1 } }
        #expect(result.operations == 150)
        #expect(calls.withLock { $0 } == 150)
        #expect(result.latency.count == 3 * (50 / 4))
        #expect(result.seconds > 0)
        #expect(result.counters == OperationCounters())
    }

    /// A step as a type: counts its calls per task and draws from the task's stream.
    struct CountingStep: HarnessOperation {
        func run(_ calls: Locked<[Int: [UInt64]]>, _ worker: inout Worker) async throws {
            let v = worker.rng.next()
            calls.withLock { [task = worker.task] in $0[task, default: []].append(v) }
        }
    }

    @Test("an operation type: exactly tasks × n calls, each with the run's argument and its task's worker")
    func operationType() async throws {
        let calls = Locked([Int: [UInt64]]())
        let result = try await Harness(tasks: 3, sampleEvery: 4).measure(
            .operations(perTask: 50), seed: 9, passing: calls, CountingStep())
        #expect(result.operations == 150)
        #expect(result.latency.count == 3 * (50 / 4))
        let seen = calls.withLock { $0 }
        #expect(seen.keys.sorted() == [0, 1, 2])
        for task in 0..<3 {
            var replay = SplitMix64(seed: Harness.taskSeed(9, task: task))
            #expect(seen[task] == (0..<50).map { _ in replay.next() }, "task \(task) draws from its own stream")
        }
    }

    @Test("an operation type's error ends the run and is rethrown")
    func operationTypeError() async throws {
        struct Failing: HarnessOperation {
            struct Stop: Error {}
            func run(_ after: Int, _ worker: inout Worker) async throws {
                if worker.completed == after { throw Stop() }
            }
        }
        await #expect(throws: Failing.Stop.self) {
            _ = try await Harness(tasks: 2).measure(.operations(perTask: 100), passing: 7, Failing())
        }
    }

    @Test("task streams depend on the seed and the task only")
    func seeds() async throws {
        func draws(seed: UInt64) async throws -> [Int: [UInt64]] {
            let seen = Locked([Int: [UInt64]]())
            _ = try await Harness(tasks: 2, sampleEvery: 1).measure(.operations(perTask: 5), seed: seed) { w in
                let v = w.rng.next()
                seen.withLock { [task = w.task] in $0[task, default: []].append(v) }
            }
            return seen.withLock { $0 }
        }
        let a = try await draws(seed: 1), b = try await draws(seed: 1), c = try await draws(seed: 2)
        #expect(a == b)
        #expect(a != c)
        var replay = SplitMix64(seed: Harness.taskSeed(1, task: 1))
        #expect(a[1] == (0..<5).map { _ in replay.next() })
        #expect(Harness.taskSeed(0, task: 3) == 3 * 7919 + 17)
    }

    @Test("a timed run lasts at least its duration and counts whole operations")
    func timed() async throws {
        let result = try await Harness(tasks: 2, sampleEvery: 8).measure(.duration(.milliseconds(30))) { _ in
            try await Task.sleep(for: .microseconds(200))
        }
        #expect(result.seconds >= 0.030, "no task stops before the deadline")
        #expect(result.operations % 8 == 0, "each task stops at a timed operation: \(result.operations)")
        #expect(result.latency.count == result.operations / 8)
        #expect(result.p50 >= 200_000, "a sleep of 200 µs takes at least 200 µs: \(result.p50)")
    }

    @Test("the synchronous loop counts every call and records one mean per group")
    func synchronous() async {
        let calls = Locked(0)
        let result = await Harness(tasks: 2).measureSynchronous(.operations(perTask: 20), groupSize: 8) { _ in
            calls.withLock { $0 += 1 }
        }
        #expect(result.operations == 40)
        #expect(calls.withLock { $0 } == 40)
        #expect(result.latency.count == 2 * 3, "groups of 8, 8 and 4 per task")
    }

    @Test("interleave measures slice s of every row before slice s+1 of any, and merges each row's slices")
    func interleaving() async throws {
        let log = Locked([String]())
        func row(_ name: String) -> BenchRow {
            BenchRow(name) { length, seed in
                log.withLock { $0.append("\(name)#\(seed)@\(length)") }
                var r = HarnessResult()
                r.operations = 10
                r.seconds = 0.5
                return r
            }
        }
        let rows = [row("a"), row("b"), row("c")]
        try await Harness.warmUp(rows, for: .milliseconds(1))
        let warm = RunLength.duration(.milliseconds(1))
        #expect(log.withLock { $0 } == ["a", "b", "c"].map { "\($0)#\(0x5741_524D)@\(warm)" })
        log.withLock { $0.removeAll() }
        let results = try await Harness.interleave(rows, perRow: .milliseconds(300), slices: 3)
        let slice = RunLength.duration(.milliseconds(100))
        #expect(
            log.withLock { $0 }
                == ["a#1", "b#1", "c#1", "a#2", "b#2", "c#2", "a#3", "b#3", "c#3"].map { "\($0)@\(slice)" })
        #expect(results.map(\.operations) == [30, 30, 30])
        #expect(results.map(\.seconds) == [1.5, 1.5, 1.5])
        #expect(results[0].opsPerSecond == 20)
    }
}
