import IsoKVCore
import IsoKVStorage
import Dispatch
import Foundation

extension Database {
    /// An online, consistent copy of this database into the new directory `destination`, taken from a registered
    /// snapshot while readers and writers keep running: a checkpoint file at the snapshot's commit number plus an
    /// empty WAL, all fsynced. `Database.open(path: destination)` opens it. Returns the commit number copied.
    ///
    /// ```swift
    /// let copied = try await db.backup(to: "/backups/data-2026-11-22")
    /// ```
    ///
    /// Throws `IsoKVError`: `58030` naming `destination` when it already holds a store (EEXIST) or a write
    /// fails.
    @discardableResult
    public func backup(to destination: String) async throws -> UInt64 {
        let snapshot = registerSnapshotForCopy()
        defer { releaseSnapshotForCopy(snapshot) }
        try await mappingStorageErrors {
            try await Self.writeBackup(
                destination, sequence: snapshot, entries: CopyEntries(index: index, bound: .snapshot(snapshot)))
        }
        return snapshot
    }

    /// Takes a consistent copy of the store in `directory` — which may be open in another process (its lock is
    /// not taken: the files are read as `isokv check` reads them) — into the new directory `destination`.
    ///
    /// The copy holds the latest checkpoint plus every whole record of the WAL when it was read: a prefix of the
    /// commit history (a batch being written may be cut at a record boundary), so never half a transaction. It
    /// may include commits the running store has written but not yet acknowledged. A concurrent checkpoint that
    /// deletes a segment while it is read makes the read retry (up to 10 times, 5 ms apart).
    public static func backup(directory: String, to destination: String) async throws -> DirectorySummary {
        try await mappingStorageErrors {
            let recovered = try await readConsistently(directory)
            let latest = replay(recovered)
            let entries = latest.values.filter { $0.value != nil }
            try await writeBackup(destination, sequence: recovered.lastSequence, entries: AsyncEntries(entries))
            return DirectorySummary(recovered, liveKeys: entries.count)
        }
    }

    /// Verifies a data directory without modifying it or taking its lock and summarizes it at the engine's level
    /// (live keys, last commit number), as `isokv check` prints. Throws the `IsoKVError` an open would throw
    /// (`XX001`, `0A000`, `58030`). Blocking (file I/O): call it from a thread, not from a cooperative task.
    public static func inspect(path: String) throws -> DirectorySummary {
        let recovered = try mappingStorageErrors { try WriteAheadLog.check(directory: path) }
        let live = replay(recovered).values.reduce(0) { $0 + ($1.value == nil ? 0 : 1) }
        return DirectorySummary(recovered, liveKeys: live)
    }

    /// What ``inspect(path:)`` and ``backup(directory:to:)`` report about a data directory.
    public struct DirectorySummary: Sendable, Hashable {
        /// Keys with a value after recovery.
        public var liveKeys: Int
        /// The last commit number recovered (the next commit gets a larger one).
        public var lastCommit: UInt64
        /// The commit number the checkpoint covers (0: no checkpoint).
        public var checkpointSequence: UInt64
        /// Commit records replayed after the checkpoint.
        public var commitsAfterCheckpoint: Int

        init(_ recovered: RecoveredState, liveKeys: Int) {
            self.liveKeys = liveKeys
            self.lastCommit = recovered.lastSequence
            self.checkpointSequence = recovered.checkpointSequence
            self.commitsAfterCheckpoint = recovered.commits.count
        }
    }

    /// Reads `directory` with `WriteAheadLog.check` on a dispatch thread, retrying when a concurrent checkpoint
    /// of a live store deleted a file between the listing and the read.
    static func readConsistently(_ directory: String) async throws -> RecoveredState {
        var attempt = 0
        while true {
            let result: Result<RecoveredState, StorageError> = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(
                        returning: Result { () throws(StorageError) in
                            try WriteAheadLog.check(directory: directory)
                        })
                }
            }
            switch result {
            case .success(let state): return state
            case .failure(let error):
                // A file deleted or being rotated under the read (a live store's checkpoint or flusher) shows as
                // an I/O error, a missing or a short segment: read again. Real damage persists and is thrown.
                attempt += 1
                switch error {
                case .io, .missingSegment, .corruptSegment: guard attempt < 10 else { throw error }
                default: throw error
                }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// Creates `destination` as a store holding exactly `entries` at commit `sequence`: a fresh WAL (one empty,
    /// fsynced segment), then a checkpoint (fsynced, renamed, directory fsynced).
    static func writeBackup<Entries: AsyncSequence>(_ destination: String, sequence: UInt64, entries: Entries)
        async throws where Entries.Element == KeyWrite
    {
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: destination),
            existing.contains(where: { $0 == DataDirectory.checkpointName || $0.hasPrefix("wal-") })
        {
            throw StorageError.io(operation: "backup", file: destination, errno: 17)  // EEXIST
        }
        let (log, _) = try await WriteAheadLog.open(directory: destination, options: WALOptions(durability: .fsync))
        do {
            try await log.checkpoint(sequence: sequence, entries: entries)
        } catch {
            await log.close()
            throw error
        }
        await log.close()
    }
}
