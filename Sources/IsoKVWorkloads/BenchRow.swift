import IsoKVCore

/// One row of a comparison: a name and how to measure it for a given length with a given seed.
public struct BenchRow: Sendable {
    public var name: String
    public var measure: @Sendable (_ length: RunLength, _ seed: UInt64) async throws -> HarnessResult

    public init(
        _ name: String, measure: @escaping @Sendable (_ length: RunLength, _ seed: UInt64) async throws -> HarnessResult
    ) {
        self.name = name
        self.measure = measure
    }
}

extension Harness {
    /// A row that runs `workload` on `context` with this harness.
    @inlinable
    public func row<Store: KeyValueStore>(
        _ name: String, _ workload: Workload<Store>,
        on context: WorkloadContext<Store>
    ) -> BenchRow {
        BenchRow(name) { length, seed in try await measure(workload, on: context, length, seed: seed) }
    }

    /// Runs `workload` on `context` for `length`, in the loop the workload was made with (specialized for its
    /// operation's type when it was made from a ``HarnessOperation``: see ``Workload``).
    public func measure<Store: KeyValueStore>(
        _ workload: Workload<Store>, on context: WorkloadContext<Store>,
        _ length: RunLength, seed: UInt64 = 0
    ) async throws -> HarnessResult {
        try await workload.measureLoop(self, context, length, seed)
    }

    /// Runs each row once for `duration`, in order, and drops the results: caches, allocator, lazily built
    /// structures and the store's steady state (promoted keys, version chains) before anything is measured.
    public static func warmUp(_ rows: [BenchRow], for duration: Duration) async throws {
        guard duration > .zero else { return }
        for row in rows { _ = try await row.measure(.duration(duration), 0x5741_524D) }
    }

    /// Measures every row for `perRow` in total, in `slices` interleaved slices: slice 1 of every row, then slice 2
    /// of every row, and so on; each row's slices are merged. A change of machine load during the run (another
    /// process, a frequency change, a noisy neighbour) then falls on every row alike instead of on whichever row
    /// happened to run at that moment, so ratios between rows stay meaningful. Slice `s` is seeded `s + 1`.
    public static func interleave(_ rows: [BenchRow], perRow: Duration, slices: Int) async throws -> [HarnessResult] {
        precondition(slices >= 1)
        let slice = perRow / slices
        var results = [HarnessResult](repeating: HarnessResult(), count: rows.count)
        for s in 0..<slices {
            for (i, row) in rows.enumerated() {
                results[i].merge(try await row.measure(.duration(slice), UInt64(s + 1)))
            }
        }
        return results
    }
}
