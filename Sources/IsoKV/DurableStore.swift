import IsoKVCore
import IsoKVStorage
import IsoKVSync
import Synchronization

/// The durable half of a ``Database`` opened with `open(path:)`: its log and its background checkpoints.
package final class DurableStore: Sendable {
    /// The data directory.
    let path: String
    /// The write-ahead log (owns its flusher and notifier threads until `close`).
    let log: WriteAheadLog
    let options: Database.OpenOptions
    /// Commits since open; the WAL size is looked at every `checkpointCheckInterval` commits (not at each, to keep
    /// the log's lock out of the commit fast path). Relaxed: a counter, not synchronization.
    let commits = Atomic<UInt64>(0)
    static let checkpointCheckInterval: UInt64 = 16
    /// Leaf lock; see ``CheckpointState``.
    let state = Locked(CheckpointState())

    /// Background checkpoint bookkeeping, guarded by `state`.
    struct CheckpointState {
        /// A background checkpoint is running (at most one; set by `afterCommit`, cleared by its task).
        var running = false
        /// The last background checkpoint task (finished or not), for `close` to wait on.
        var task: Task<Void, Never>?
        /// Set by `close`: no new background checkpoint starts.
        var closing = false
        /// The error of the last failed background checkpoint (the next one over the threshold retries).
        var lastError: String?
    }

    init(path: String, log: WriteAheadLog, options: Database.OpenOptions) {
        self.path = path
        self.log = log
        self.options = options
    }

    /// Called after each durable commit: starts a background checkpoint when the WAL outgrew the threshold.
    func afterCommit(_ db: Database) {
        guard let threshold = options.checkpointWALBytes else { return }
        let n = commits.wrappingAdd(1, ordering: .relaxed).newValue
        guard n % Self.checkpointCheckInterval == 0, log.walBytes >= threshold else { return }
        state.withLock { s in
            guard !s.running, !s.closing else { return }
            s.running = true
            // Detached: the checkpoint must not run on (and inherit the isolation of) the committer's executor.
            // Its file I/O runs on the log's own dispatch queue; this task only reads chains.
            s.task = Task.detached(priority: .utility) { [self] in
                do {
                    try await self.writeCheckpoint(db)
                    self.state.withLock {
                        $0.lastError = nil; $0.running = false
                    }
                } catch {
                    self.state.withLock {
                        $0.lastError = "\(error)"; $0.running = false
                    }
                }
            }
        }
    }

    /// A fuzzy checkpoint: every key's newest published version as the writer reaches it (``CopyEntries/Bound/newestPublished(_:)``),
    /// covering the commits up to the newest one published when it started; the log replays the later ones over
    /// it at recovery and deletes the segments it covers. Commits continue meanwhile and no snapshot is pinned.
    func writeCheckpoint(_ db: Database) async throws {
        // Every commit up to `start` is installed and in the scan index (the copy walks it).
        let start = db.oracle.latest()
        try await log.checkpoint(
            sequence: start, entries: CopyEntries(index: db.index, bound: .newestPublished(db.oracle)))
    }

    func close() async {
        let task = state.withLock { s -> Task<Void, Never>? in
            s.closing = true
            return s.task
        }
        await task?.value
        await log.close()
    }

    /// The error a commit throws for a log error: the general mapping (``IsoKVError/init(_:)``), with the
    /// consequence spelled out for a failed log.
    static func commitError(_ error: StorageError) -> IsoKVError {
        var e = IsoKVError(error)
        if e.code == .storageFailure {
            e.message = "commit is not durable and the database refuses further commits until it is reopened: \(error)"
        }
        return e
    }
}
