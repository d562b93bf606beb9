import IsoKVCore

/// Why ``ConformanceRunner/run(_:at:)`` could not run a replay (a store that misbehaves during a replay is not an
/// error: it is an ``Outcome`` with a ``Verdict/unexpected(_:)`` verdict).
///
/// ```swift
/// do { _ = try await runner.run(.lockTimeout, at: .readCommitted) }
/// catch ConformanceError.unsupported(let why) { print("skipped:", why) }
/// ```
public enum ConformanceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The backend lacks a capability the replay needs, or a hook its capabilities promise is missing.
    case unsupported(String)
    /// The replay does not apply at the level (``Replay/levels``).
    case notApplicable(Replay, IsolationLevel)

    public var description: String {
        switch self {
        case .unsupported(let why): return "unsupported: \(why)"
        case .notApplicable(let replay, let level): return "\(replay) does not apply at \(level.rawValue)"
        }
    }
}
