/// What the expected table says about one replay at one level on a backend with given capabilities: a verdict,
/// or that the replay is not run there (and why).
///
/// ```swift
/// switch Replay.dirtyRead.expectedOutcome(at: .readUncommitted, on: capabilities) {
/// case .verdict(let v): print("expect", v)          // occurred with true dirty reads, prevented (snapshot) otherwise
/// case .notRun(let reason): print("skipped:", reason)
/// }
/// ```
public enum ExpectedOutcome: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The replay runs and must end with this verdict.
    case verdict(Verdict)
    /// The replay does not apply at this level, or needs a capability the backend lacks.
    case notRun(reason: String)

    /// The expected verdict, or nil when the replay is not run.
    public var verdict: Verdict? {
        if case .verdict(let v) = self { return v }
        return nil
    }

    public var description: String {
        switch self {
        case .verdict(let v): return v.description
        case .notRun(let reason): return "not run (\(reason))"
        }
    }
}

extension ExpectedOutcome {
    private enum CodingKeys: String, CodingKey { case verdict, reason }

    /// Encoded as the verdict's own object, or `{"verdict": "not-run", "reason": "…"}`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if try c.decode(String.self, forKey: .verdict) == "not-run" {
            self = .notRun(reason: try c.decode(String.self, forKey: .reason))
        } else {
            self = .verdict(try Verdict(from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .verdict(let verdict):
            try verdict.encode(to: encoder)
        case .notRun(let reason):
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode("not-run", forKey: .verdict)
            try c.encode(reason, forKey: .reason)
        }
    }
}
