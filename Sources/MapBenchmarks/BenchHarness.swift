import ConcurrentMaps
import IsoKVSync
import Foundation
import Synchronization

/// The phases of one measurement, shared by the driver and its worker threads.
///
/// Workers check `phase` every ``BenchControl/batch`` operations: they spin while it is `waiting` (the start barrier),
/// run but do not count during `warmingUp`, count during `measuring`, and return at `stopped`. Only the driver
/// thread stores it, in that order.
public final class BenchControl: Sendable {
    /// Operations between two checks of `phase`; the error on each side of the measured interval is at most this
    /// many operations per thread.
    public static let batch = 64

    public enum Phase: Int, Sendable { case waiting = 0, warmingUp, measuring, stopped }

    /// Written by the driver only; read by every worker (relaxed: a phase seen a batch late costs one batch).
    let phase = Atomic<Int>(Phase.waiting.rawValue)
    /// Workers that reached the start barrier.
    let ready = Atomic<Int>(0)

    public init() {}

    @inline(__always) var current: Int { phase.load(ordering: .relaxed) }
}

/// What one worker reports when it stops.
struct ThreadOutcome: Sendable {
    /// Operations done while the phase was `measuring` (or all of them, under an operation limit).
    var operations: Int
    /// Sum of the values the loop read; printed nowhere, it keeps the loads alive.
    var checksum: Int
}

/// Runs `step` in batches until `control` stops, counting only the batches that end in the measuring phase.
/// With `limit`, runs exactly `limit` steps once the barrier opens and ignores the phases after that.
@inline(__always)
func drive(_ control: BenchControl, _ limit: Int?, _ step: () -> Void) -> Int {
    driveBatches(control, limit) { n in for _ in 0..<n { step() } }
}

/// `drive` for loop bodies too large for the optimizer to inline into it: `batch(n)` runs `n` iterations itself,
/// so at worst one direct call per ``BenchControl/batch`` operations remains.
@inline(__always)
func driveBatches(_ control: BenchControl, _ limit: Int?, _ batch: (Int) -> Void) -> Int {
    control.ready.add(1, ordering: .sequentiallyConsistent)
    while control.current == BenchControl.Phase.waiting.rawValue { spinHint() }
    var measured = 0
    var left = limit ?? Int.max
    let measuring = BenchControl.Phase.measuring.rawValue
    let stopped = BenchControl.Phase.stopped.rawValue
    while true {
        let n = limit == nil ? BenchControl.batch : Swift.min(BenchControl.batch, left)
        batch(n)
        if limit != nil {
            measured &+= n
            left &-= n
            if left == 0 { return measured }
            continue
        }
        let p = control.current
        if p == measuring { measured &+= n } else if p == stopped { return measured }
    }
}

@inline(__always) func spinHint() { sched_yield() }

/// How long a measurement runs: timed (warm-up then measured interval) or a fixed operation count per thread
/// (used by the tests: no clocks involved).
public enum BenchLimit: Sendable, Equatable {
    case timed(warmup: Duration, measure: Duration)
    case operationsPerThread(Int)
}

/// The result of one (workload, implementation, thread count) measurement.
public struct Measurement: Sendable, Equatable {
    public var workload: MapWorkload
    public var implementation: String
    public var threads: Int
    /// Operations counted over all threads.
    public var operations: Int
    /// Length of the measured interval in seconds (0 under an operation limit).
    public var seconds: Double
    public var opsPerSecond: Double { seconds > 0 ? Double(operations) / seconds : 0 }

    public init(workload: MapWorkload, implementation: String, threads: Int, operations: Int, seconds: Double) {
        self.workload = workload
        self.implementation = implementation
        self.threads = threads
        self.operations = operations
        self.seconds = seconds
    }
}

/// Runs one workload over a fresh `M` on `threads` OS threads that this function owns.
///
/// The map is set up on the calling thread; workers start together behind a barrier, warm up, are measured, and
/// are stopped by the phase flag. The calling thread only sleeps and flips phases.
public func measure<M: ConcurrentMap>(
    _ type: M.Type, name: String, workload: MapWorkload, threads: Int, limit: BenchLimit
) -> Measurement where M.Key == Int, M.Value == Int {
    precondition(threads >= 1)
    let map = M()
    workload.setUp(map)
    let control = BenchControl()
    // `Locked` (a pthread mutex), not `Synchronization.Mutex`: ThreadSanitizer cannot see the latter's slow path.
    let outcomes = Locked<[ThreadOutcome?]>(Array(repeating: nil, count: threads))
    let done = DispatchSemaphore(value: 0)
    let opLimit: Int? = if case .operationsPerThread(let n) = limit { n } else { nil }

    for id in 0..<threads {
        let t = Thread {
            let outcome = workload.runThread(map, id: id, control: control, limit: opLimit)
            outcomes.withLock { $0[id] = outcome }
            done.signal()
        }
        t.name = "bench-\(workload.rawValue)-\(id)"
        t.start()
    }
    // Barrier: every worker is spinning on `waiting` before any starts.
    while control.ready.load(ordering: .sequentiallyConsistent) < threads { spinHint() }

    var seconds = 0.0
    switch limit {
    case .operationsPerThread:
        control.phase.store(BenchControl.Phase.measuring.rawValue, ordering: .sequentiallyConsistent)
    case .timed(let warmup, let length):
        let clock = ContinuousClock()
        control.phase.store(BenchControl.Phase.warmingUp.rawValue, ordering: .sequentiallyConsistent)
        sleep(for: warmup)
        control.phase.store(BenchControl.Phase.measuring.rawValue, ordering: .sequentiallyConsistent)
        let start = clock.now
        sleep(for: length)
        control.phase.store(BenchControl.Phase.stopped.rawValue, ordering: .sequentiallyConsistent)
        let elapsed = start.duration(to: clock.now)
        seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
    for _ in 0..<threads { done.wait() }
    let total = outcomes.withLock { $0.reduce(0) { $0 + ($1?.operations ?? 0) } }
    withExtendedLifetime(map) {}
    return Measurement(
        workload: workload, implementation: name, threads: threads, operations: total, seconds: seconds)
}

/// Blocks the calling (owned, non-cooperative) thread.
private func sleep(for d: Duration) {
    let ns = Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9
    Thread.sleep(forTimeInterval: ns / 1e9)
}
