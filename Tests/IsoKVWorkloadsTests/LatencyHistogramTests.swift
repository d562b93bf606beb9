import IsoKVWorkloads
import Testing

@Suite("Workloads latency histogram")
struct LatencyHistogramTests {
    func histogram(_ values: some Sequence<UInt64>) -> LatencyHistogram {
        var h = LatencyHistogram()
        for v in values { h.record(nanoseconds: v) }
        return h
    }

    @Test("percentiles of 1…1000 ns are exact (values below 2048 have unit resolution)")
    func knownPercentiles() {
        let h = histogram(1...1000)
        #expect(h.count == 1000)
        #expect(h.p50 == 500)
        #expect(h.p99 == 990)
        #expect(h.p999 == 999)
        #expect(h.nanoseconds(atPercentile: 100) == 1000)
        #expect(h.mean == 500.5)
        #expect(h.max == 1000)
    }

    @Test("merging per-task histograms gives the histogram of all values")
    func merge() {
        var a = histogram(stride(from: 1, through: 1000, by: 2))
        let b = histogram(stride(from: 2, through: 1000, by: 2))
        a.merge(b)
        let whole = histogram(1...1000)
        for p in [1.0, 25, 50, 90, 99, 99.9, 100] {
            #expect(a.nanoseconds(atPercentile: p) == whole.nanoseconds(atPercentile: p), "p\(p)")
        }
        #expect(a.count == whole.count && a.sum == whole.sum)
    }

    @Test("large values keep three significant digits; beyond 10 s the histogram grows")
    func largeValues() {
        var h = histogram(Array(repeating: 1_234_567, count: 99) + [60_000_000_000])
        #expect(abs(h.p50 - 1_234_567) / 1_234_567 < 0.001)
        #expect(abs(h.nanoseconds(atPercentile: 100) - 6e10) / 6e10 < 0.001)
        h.record(.milliseconds(3))
        #expect(h.count == 101)
        #expect(h.mean == Double(99 * 1_234_567 + 60_000_000_000 + 3_000_000) / 101, "the mean is exact")
    }

    @Test("an empty histogram reports zeros")
    func empty() {
        let h = LatencyHistogram()
        #expect(h.isEmpty && h.count == 0 && h.p50 == 0 && h.p999 == 0 && h.mean == 0 && h.max == 0)
    }
}
