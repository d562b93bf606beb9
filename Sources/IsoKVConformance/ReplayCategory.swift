/// Whether a replay provokes an isolation anomaly or exercises a row-lock behaviour.
///
/// ```swift
/// let anomalies = Replay.allCases.filter { $0.category == .anomaly }
/// ```
public enum ReplayCategory: String, Hashable, Sendable, Codable, CaseIterable {
    /// An anomaly of the isolation literature (Berenson et al. 1995, Adya 1999, Fekete et al. 2004): the verdict
    /// says whether it occurred and, if not, what prevented it.
    case anomaly
    /// A row-lock behaviour (`FOR SHARE`/`FOR UPDATE`, `NOWAIT`, `SKIP LOCKED`, lock timeout, deadlocks): the
    /// verdict says how the store resolved the conflict the replay provokes.
    case rowLock = "row-lock"
}
