import Histogram

/// Latencies in nanoseconds, in an HdrHistogram (Gil Tene's High Dynamic Range histogram, the Swift port): constant
/// memory, constant-time recording, and every percentile within 0.1 % of the exact value (three significant
/// digits; values below 2048 ns are exact).
///
/// One per task, merged at the end (``merge(_:)`` adds the buckets), so recording never touches shared memory.
///
/// ```swift
/// var h = LatencyHistogram()
/// h.record(nanoseconds: 1_250)
/// h.p99                      // 1250.0
/// ```
public struct LatencyHistogram: Sendable {
    /// Tracks 1 ns … 10 s before it grows (it grows by itself past that: `autoResize`).
    @usableFromInline var histogram: Histogram<UInt64>
    /// Exact sum of the recorded values (the histogram's own mean is bucketed).
    @usableFromInline var total: Double = 0

    public init() {
        histogram = Histogram(
            lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000_000,
            numberOfSignificantValueDigits: .three)
        histogram.autoResize = true
    }

    @inlinable
    public mutating func record(nanoseconds: UInt64) {
        histogram.record(nanoseconds)
        total += Double(nanoseconds)
    }

    public mutating func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        record(
            nanoseconds: UInt64(Swift.max(0, seconds)) &* 1_000_000_000
                &+ UInt64(Swift.max(0, attoseconds) / 1_000_000_000))
    }

    /// Adds every value of `other`.
    public mutating func merge(_ other: LatencyHistogram) {
        histogram.add(other.histogram)
        total += other.total
    }

    /// Number of values recorded.
    public var count: Int { Int(histogram.totalCount) }
    public var isEmpty: Bool { histogram.totalCount == 0 }
    /// Exact sum of the values recorded.
    public var sum: Double { total }
    /// Exact mean, or 0 when empty.
    public var mean: Double { isEmpty ? 0 : total / Double(count) }
    /// Largest value recorded, or 0 when empty.
    public var max: Double { isEmpty ? 0 : Double(histogram.max) }

    /// The value at `percentile` (0…100): the smallest recorded value (to three significant digits) that
    /// `percentile` % of the values are at or below; 0 when empty.
    public func nanoseconds(atPercentile percentile: Double) -> Double {
        isEmpty ? 0 : Double(histogram.valueAtPercentile(percentile))
    }

    public var p50: Double { nanoseconds(atPercentile: 50) }
    public var p99: Double { nanoseconds(atPercentile: 99) }
    public var p999: Double { nanoseconds(atPercentile: 99.9) }
}
