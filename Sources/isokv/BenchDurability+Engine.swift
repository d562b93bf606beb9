import Foundation
import IsoKV
import IsoKVStorage

extension BenchDurability {
    /// `bench durability --engine`: the same workload through the MVCC engine — `Database.open(path:)` in `mode`,
    /// each writer `db.put`s its own key (a one-key read-committed transaction: row lock, commit number, WAL
    /// record enqueued under the commit lock, wait until durable, publish, unlock). No background checkpoint, so
    /// that only the commit path is measured.
    static func measureEngine(
        _ mode: DurabilityMode, _ writers: Int, _ seconds: Double, _ valueBytes: Int,
        _ directory: String
    ) async throws -> Measurement {
        let db = try await Database.open(
            path: directory,
            options: Database.OpenOptions(durability: mode, checkpointWALBytes: nil))
        let value = Bytes([UInt8](repeating: 0xA5, count: valueBytes))
        let startStats = db.statistics().wal!  // non-nil: opened with a path
        let keys = (0..<writers).map { Bytes("key\($0)") }
        let run = try await runWriters(writers, seconds) { w, _ in
            try await db.put(keys[w], value)
        }
        let stats = db.statistics().wal!
        await db.close()
        return Measurement(
            run, syncs: stats.syncs - startStats.syncs,
            syncNanoseconds: stats.batchSyncNanoseconds - startStats.batchSyncNanoseconds)
    }
}
