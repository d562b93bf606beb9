/// The isolation level a history is checked against.
///
/// Mirrors IsoKV's `IsolationLevel` (this module does not depend on the engine, so it has its own enum); the mapping
/// to forbidden phenomena follows Adya (PL-1, PL-2, PL-SI, PL-3) and Berenson et al. — see ``forbidden``.
public enum HistoryIsolation: String, Sendable, Codable, CaseIterable, Comparable, CustomStringConvertible {
    /// PL-1: forbids only dirty writes (G0).
    case readUncommitted = "read-uncommitted"
    /// PL-2: forbids G0 and every G1 (aborted, intermediate reads, circular information flow).
    case readCommitted = "read-committed"
    /// PL-SI as implemented by a snapshot store: PL-2 plus G-single (read skew) and lost update.
    case snapshot = "snapshot"
    /// PL-3: forbids every phenomenon, including G2-item (write skew) and G2 (predicate phantoms).
    case serializable = "serializable"

    public var description: String { rawValue }

    private var rank: Int {
        switch self {
        case .readUncommitted: 0
        case .readCommitted: 1
        case .snapshot: 2
        case .serializable: 3
        }
    }

    public static func < (a: HistoryIsolation, b: HistoryIsolation) -> Bool { a.rank < b.rank }

    /// The phenomena a history run at this level must not exhibit.
    ///
    /// | level            | forbidden                                                        |
    /// |------------------|------------------------------------------------------------------|
    /// | read uncommitted | G0                                                               |
    /// | read committed   | G0, G1a, G1b, G1c                                                |
    /// | snapshot         | the above, G-single, lost update                                 |
    /// | serializable     | the above, G2-item, G2                                           |
    ///
    /// Store-integrity findings (garbage read, duplicate version) are forbidden at every level.
    public var forbidden: Set<Phenomenon> {
        var s: Set<Phenomenon> = [.g0, .garbageRead, .duplicateVersion]
        if self >= .readCommitted { s.formUnion([.g1a, .g1b, .g1c]) }
        if self >= .snapshot { s.formUnion([.gSingle, .lostUpdate]) }
        if self >= .serializable { s.formUnion([.g2Item, .g2]) }
        return s
    }
}

/// A phenomenon (anomaly) the checker can find, after Adya's thesis ("Weak Consistency", 1999) and Elle.
///
/// Cycle phenomena are classified by the most specific class the reported cycle belongs to:
/// G0 (only ww) ⊂ G1c (ww/wr, at least one wr) ⊂ G-single (exactly one rw) ⊂ G2-item (two or more item rw) ⊂ G2
/// (at least one predicate rw from a scan). A history showing G-single is *also* G2-item in Adya's inclusive sense; the
/// checker reports each cycle once, under its narrowest class.
public enum Phenomenon: String, Sendable, Codable, CaseIterable, Comparable, CustomStringConvertible {
    /// Dirty write: a cycle of write-write dependencies.
    case g0 = "G0"
    /// Aborted read: a committed transaction read a value written by a transaction that aborted.
    case g1a = "G1a"
    /// Intermediate read: a committed transaction read a value that its writer later overwrote itself.
    case g1b = "G1b"
    /// Circular information flow: a cycle of ww and wr dependencies with at least one wr.
    case g1c = "G1c"
    /// A cycle with exactly one anti-dependency (read skew; lost update is one instance).
    case gSingle = "G-single"
    /// A cycle with two or more item anti-dependencies and no predicate one (write skew).
    case g2Item = "G2-item"
    /// A cycle with at least one predicate anti-dependency (a phantom: a scan missed a later insert).
    case g2 = "G2"
    /// Two committed transactions read the same version of a key and both wrote a new version of it.
    case lostUpdate = "lost-update"
    /// A read observed a version that no recorded transaction installed and that is not older than the recorded
    /// ones, or a transaction that is not in the history: the store returned something it never wrote.
    case garbageRead = "garbage-read"
    /// Two committed transactions installed the same version of one key.
    case duplicateVersion = "duplicate-version"

    public var description: String { rawValue }

    /// Whether the phenomenon is a dependency cycle (reported with a cycle) rather than a single bad read.
    public var isCycle: Bool {
        switch self {
        case .g0, .g1c, .gSingle, .g2Item, .g2: true
        default: false
        }
    }

    private var rank: Int { Phenomenon.allCases.firstIndex(of: self)! }

    public static func < (a: Phenomenon, b: Phenomenon) -> Bool { a.rank < b.rank }

    /// Whether a history run at `level` must not show this phenomenon.
    public func isForbidden(at level: HistoryIsolation) -> Bool { level.forbidden.contains(self) }

    /// The weakest level that forbids this phenomenon.
    public var forbiddenFrom: HistoryIsolation {
        HistoryIsolation.allCases.first { $0.forbidden.contains(self) }!
    }
}
