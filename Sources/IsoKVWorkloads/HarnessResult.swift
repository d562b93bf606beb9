/// One measurement: operations and wall time, sampled latencies, and transaction counters — of one run, or of a
/// row's slices merged.
public struct HarnessResult: Sendable {
    /// Operations finished, all tasks together.
    public var operations = 0
    /// Wall-clock seconds, from the start of the first task to the end of the last (summed over merged slices).
    public var seconds = 0.0
    /// Sampled operation latencies in nanoseconds (see ``Harness/sampleEvery``).
    public var latency = LatencyHistogram()
    public var counters = OperationCounters()

    public init() {}

    public var opsPerSecond: Double { seconds > 0 ? Double(operations) / seconds : 0 }
    public var p50: Double { latency.p50 }
    public var p99: Double { latency.p99 }
    public var p999: Double { latency.p999 }

    /// Adds `other` (another slice of the same row): operations, seconds, latencies and counters add up, so the
    /// throughput of the merged result is total operations / total measured time.
    public mutating func merge(_ other: HarnessResult) {
        operations += other.operations
        seconds += other.seconds
        latency.merge(other.latency)
        counters.merge(other.counters)
    }
}
