/// How much a transaction sees of concurrent transactions. Each level is described, rule by rule, in DESIGN.md.
///
/// | level              | dirty write | dirty read | lost update (read-modify-write) | non-repeatable read | phantom | read skew |
/// |--------------------|-------------|------------|---------------------------------|---------------------|---------|-----------|
/// | `.readUncommitted` | prevented   | ALLOWED    | allowed                         | allowed             | allowed | allowed   |
/// | `.readCommitted`   | prevented   | prevented  | allowed                         | allowed             | allowed | allowed   |
/// | `.snapshot`        | prevented   | prevented  | prevented (`40001`)             | prevented           | prevented | prevented |
/// | `.serializable`    | prevented   | prevented  | prevented (`40001`)             | prevented           | prevented | prevented |
///
/// Write skew (G2-item) and predicate write skew (G2) are possible at `.snapshot`; `.serializable` (SSI, see
/// SSI/DESIGN.md) prevents them by aborting one transaction of each dangerous structure with `40001`.
///
/// ```swift
/// let tx = try await db.begin(.readCommitted)
/// ```
public enum IsolationLevel: String, Sendable, Hashable, CaseIterable, Codable {
    /// Reads see the newest version of each key, including other transactions' uncommitted writes (true dirty
    /// reads, unlike PostgreSQL, which treats this level as read committed). Writes behave as at read committed.
    case readUncommitted = "read-uncommitted"
    /// Each operation reads a fresh snapshot of committed data (one scan sees one snapshot). A writer that waited
    /// for a row lock proceeds against the newest committed version.
    case readCommitted = "read-committed"
    /// One snapshot per transaction, taken at its first operation. First updater wins: writing or locking a key
    /// changed by a transaction that committed after the snapshot fails with `40001`.
    case snapshot = "snapshot"
    /// Serializable snapshot isolation (PostgreSQL's SERIALIZABLE): snapshot isolation plus tracking of what each
    /// serializable transaction read (keys and scanned ranges); a transaction that could complete a cycle of
    /// dependencies fails with `40001` (at a read, a write or commit) and can simply be retried. Read-only
    /// transactions with a safe snapshot never fail; `deferrable` ones wait for one
    /// (the engine's `Database.begin(_:readOnly:deferrable:)`). Only serializable transactions are tracked: mixed with
    /// other levels, the guarantee covers the serializable transactions among themselves (see SSI/DESIGN.md).
    case serializable = "serializable"

    /// PostgreSQL's name for ``snapshot``.
    public static let repeatableRead = IsolationLevel.snapshot

    /// The level `begin()` and `transaction {}` use when none is given: ``serializable`` (safe by default).
    public static let `default` = IsolationLevel.serializable

    /// Whether the level reads one snapshot for the whole transaction (`.snapshot` and `.serializable`).
    public var hasTransactionSnapshot: Bool { self == .snapshot || self == .serializable }
}
