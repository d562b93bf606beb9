/// The ways the `lost-update` experiment adds a reaction to a thread: insert the reaction row under its own key and
/// add one to the thread's reaction counter (a decimal integer value). All but the first claim to lose no update.
public enum LostUpdateStrategy: String, Hashable, Sendable, Codable, CaseIterable {
    /// Read the counter, insert the row, write counter + 1, at read committed, no lock: the broken baseline.
    case readModifyWrite = "read-modify-write"
    /// `lock(counter, .forUpdate)` at read committed, then insert and write counter + 1 (`SELECT … FOR UPDATE`).
    case rowLock = "row-lock"
    /// Snapshot (repeatable read) read-modify-write; a `40001` is retried at once, at most 5 retries, as the seed.
    case snapshotRetry = "snapshot-retry-5"
    /// The same, retried with jittered backoff until the operation's time budget is spent.
    case snapshotBudget = "snapshot-retry-budget"
    /// Insert the row, then `put(counter, n + 1, ifVersion:)`; on a version mismatch delete the row and try again,
    /// at most 5 tries in all, as the seed (no transaction).
    case compareAndSet = "compare-and-set-5"
    /// The same, with jittered backoff until the time budget is spent.
    case compareAndSetBudget = "compare-and-set-budget"
    /// Insert the row, then `increment(counter)`: the store adds one under its own lock (`SET n = n + 1`).
    case atomicIncrement = "atomic-increment"
    /// Serializable read-modify-write, retried on `40001`/`40P01` up to a high bound (``LostUpdateParameters``).
    case serializableRetry = "serializable-retry"
    /// One owner task per partition of the key space; requests routed to it by hash through an `AsyncStream`, the
    /// owner applying what is queued in one transaction per batch.
    case partitionedWriter = "partitioned-writer"

    /// Whether the strategy claims to lose no update (a loss is then a failure).
    public var preventsLostUpdates: Bool { self != .readModifyWrite }

    /// One line for the table.
    public var summary: String {
        switch self {
        case .readModifyWrite: return "read committed, read then write (no protection)"
        case .rowLock: return "read committed, lock(.forUpdate) then write"
        case .snapshotRetry: return "snapshot + retry on 40001, 5 retries, no backoff"
        case .snapshotBudget: return "snapshot + retry on 40001 with backoff, time budget"
        case .compareAndSet: return "put(ifVersion:), 5 tries, no backoff"
        case .compareAndSetBudget: return "put(ifVersion:) with backoff, time budget"
        case .atomicIncrement: return "increment(counter)"
        case .serializableRetry: return "serializable + retry on 40001/40P01"
        case .partitionedWriter: return "one owner task per partition, batched"
        }
    }

    /// What seed 003 published for this strategy (PostgreSQL, Go with pgx, 100 concurrent reactions), if it ran it.
    public var seedPublished: SeedFigure? {
        switch self {
        case .rowLock:
            return SeedFigure(
                rows: 100, milliseconds: 424,
                wording: "Lock Row Using SELECT ... FOR UPDATE: 100 row inserted, \"throughput\" 424ms")
        case .snapshotRetry:
            return SeedFigure(
                rows: 93, milliseconds: 325,
                wording: "Automatically Lost Update Detected (repeatable read, 5 retries): 93 row inserted, 325ms")
        case .compareAndSet:
            return SeedFigure(
                rows: 18, milliseconds: 367, wording: "Compare And Set (5 tries): 18 row inserted, 367ms")
        default:
            return nil
        }
    }
}

/// A figure the seed article published (not measured here): reaction rows inserted out of 100, and the test's wall
/// time, which the article calls throughput.
public struct SeedFigure: Hashable, Sendable, Codable {
    public var rows: Int
    public var milliseconds: Int
    /// The article's wording, abridged.
    public var wording: String
}
