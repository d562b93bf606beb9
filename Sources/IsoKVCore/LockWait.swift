/// What to do when a row lock is held by another transaction.
public enum LockWait: String, Sendable, Hashable, Codable {
    /// Suspend until the lock is granted, the lock timeout expires (`55P03`), or a deadlock is detected (`40P01`).
    case block
    /// Fail at once with `55P03`.
    case noWait = "no-wait"
    /// Only for locking scans: leave out the rows locked by others.
    case skipLocked = "skip-locked"
}
