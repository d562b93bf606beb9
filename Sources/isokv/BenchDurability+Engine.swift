import Foundation
import IsoKV
import IsoKVStorage

extension BenchDurability {
    /// `bench durability --engine`: the same workload through the MVCC engine — `Database.open(path:)` in `mode`,
    /// each writer `db.put`s its own key (a one-key read-committed transaction: row lock, commit number, WAL
    /// record enqueued under the commit lock, wait until durable, publish, unlock). No background checkpoint, so
    /// that only the commit path is measured.
    static func measureEngine(_ mode: DurabilityMode, _ writers: Int, _ seconds: Double, _ valueBytes: Int,
                              _ directory: String) async throws -> Measurement {
        let db = try await Database.open(path: directory,
                                         options: Database.OpenOptions(durability: mode, checkpointWALBytes: nil))
        let value = Bytes([UInt8](repeating: 0xA5, count: valueBytes))
        let startStats = db.walStatistics!  // non-nil: opened with a path
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(seconds * 1e9)
        let perWriter = try await withThrowingTaskGroup(of: [Double].self) { group in
            for w in 0..<writers {
                group.addTask {
                    var latencies: [Double] = []
                    latencies.reserveCapacity(1 << 16)
                    let key = Bytes("key\(w)")
                    var now = DispatchTime.now().uptimeNanoseconds
                    while now < deadline {
                        let t0 = now
                        try await db.put(key, value)
                        now = DispatchTime.now().uptimeNanoseconds
                        latencies.append(Double(now - t0))
                    }
                    return latencies
                }
            }
            var all: [[Double]] = []
            for try await l in group { all.append(l) }
            return all
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let stats = db.walStatistics!
        await db.close()
        var latencies = perWriter.flatMap { $0 }
        latencies.sort()
        return Measurement(commitsPerSecond: Double(latencies.count) / elapsed,
                           syncsPerSecond: Double(stats.syncs - startStats.syncs) / elapsed,
                           p50: percentile(latencies, 0.50), p99: percentile(latencies, 0.99),
                           meanSync: Double(stats.batchSyncNanoseconds - startStats.batchSyncNanoseconds)
                               / Double(max(1, stats.syncs - startStats.syncs)))
    }
}
