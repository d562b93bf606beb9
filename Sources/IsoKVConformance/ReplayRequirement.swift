/// A capability a replay cannot run without (see ``Replay/requirements`` and
/// ``BackendCapabilities/satisfies(_:)``). A backend that lacks one gets ``ExpectedOutcome/notRun(reason:)`` for
/// the replay, never a guess.
///
/// ```swift
/// Replay.deadlockOfTwo.requirements              // [.observableLockWaits]
/// ```
public enum ReplayRequirement: String, Hashable, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// ``BackendCapabilities/observableLockWaits``.
    case observableLockWaits = "observable-lock-waits"
    /// ``BackendCapabilities/savepoints``.
    case savepoints
    /// ``BackendCapabilities/lockTimeout``.
    case lockTimeout = "lock-timeout"
    /// ``BackendCapabilities/deferrableReadOnly``.
    case deferrableReadOnly = "deferrable-read-only"

    public var description: String {
        switch self {
        case .observableLockWaits: return "needs observable lock waits"
        case .savepoints: return "needs savepoints"
        case .lockTimeout: return "needs a lock timeout"
        case .deferrableReadOnly: return "needs deferrable read-only transactions"
        }
    }
}
