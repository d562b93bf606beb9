import IsoKVCore

/// What a replay found, in the terms the expected table uses: whether the anomaly occurred and, if not, what
/// prevented it and in which transaction. Two verdicts are compared with `==`; the human-readable part of a run is
/// in ``Outcome/detail``.
///
/// For an anomaly replay, "prevented" means the anomaly did not show. For a row-lock replay the replay provokes a
/// lock conflict, and the verdict says how the store resolved it (who waited, who failed with which code).
///
/// ```swift
/// switch outcome.verdict {
/// case .occurred: print("the anomaly happened")
/// case .preventedByError(.serializationFailure, let role, _): print(role, "failed with 40001")
/// default: print(outcome.verdict)          // "T2 waited", "prevented (snapshot)", …
/// }
/// ```
public enum Verdict: Hashable, Sendable {
    /// The anomaly happened: every transaction committed and the replay observed the anomalous result.
    case occurred
    /// Prevented without any transaction waiting or failing: the reader's snapshot did not show the concurrent
    /// change (multi-version reads).
    case preventedBySnapshot
    /// Prevented because `role` waited (suspended on a row lock, or for a safe snapshot) until the conflicting
    /// transaction ended, and then went on without error.
    case preventedByWaiting(TransactionRole)
    /// Prevented because `role` failed with `code` (`40001` serialization failure and `40P01` deadlock abort the
    /// transaction; `55P03` lock not available fails the request). `afterWaiting` is true when the replay
    /// established that `role` had waited for a lock before failing (observed through the backend's lock-wait hook,
    /// or, for a lock timeout, by the time the request took); false when it failed at once or the replay cannot
    /// tell.
    case preventedByError(IsoKVError.Code, TransactionRole, afterWaiting: Bool)
    /// A locking read with `wait: .skipLocked` left out the rows other transactions held, and returned the others.
    case skippedLockedRows
    /// The store did something no other verdict describes (a wrong value, an error where none may occur, a replay
    /// that did not finish); the text says what. Never expected, so never a match.
    case unexpected(String)

    /// Whether the anomaly was kept from happening (every verdict but ``occurred`` and ``unexpected(_:)``).
    public var isPrevented: Bool {
        switch self {
        case .occurred, .unexpected: return false
        case .preventedBySnapshot, .preventedByWaiting, .preventedByError, .skippedLockedRows: return true
        }
    }
}

extension Verdict: CustomStringConvertible {
    /// A short cell text for a matrix: `occurred`, `prevented (snapshot)`, `T2 waited`, `T2 failed 40001`,
    /// `T2 waited, failed 40001`, `locked rows skipped`, `unexpected: …`.
    public var description: String {
        switch self {
        case .occurred: return "occurred"
        case .preventedBySnapshot: return "prevented (snapshot)"
        case .preventedByWaiting(let role): return "\(role) waited"
        case .preventedByError(let code, let role, let waited):
            return waited ? "\(role) waited, failed \(code)" : "\(role) failed \(code)"
        case .skippedLockedRows: return "locked rows skipped"
        case .unexpected(let text): return "unexpected: \(text)"
        }
    }
}

extension Verdict: Codable {
    private enum CodingKeys: String, CodingKey { case verdict, code, transaction, afterWaiting, text }
    private enum Kind: String, Codable {
        case occurred
        case preventedBySnapshot = "prevented-by-snapshot"
        case preventedByWaiting = "prevented-by-waiting"
        case preventedByError = "prevented-by-error"
        case skippedLockedRows = "skipped-locked-rows"
        case unexpected
    }

    /// Encoded as a flat object: `{"verdict": "prevented-by-error", "code": "40001", "transaction": "T2",
    /// "afterWaiting": true}`; `{"verdict": "unexpected", "text": "…"}`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(Kind.self, forKey: .verdict) {
        case .occurred: self = .occurred
        case .preventedBySnapshot: self = .preventedBySnapshot
        case .preventedByWaiting: self = .preventedByWaiting(try c.decode(TransactionRole.self, forKey: .transaction))
        case .preventedByError:
            self = .preventedByError(
                IsoKVError.Code(rawValue: try c.decode(String.self, forKey: .code)),
                try c.decode(TransactionRole.self, forKey: .transaction),
                afterWaiting: try c.decode(Bool.self, forKey: .afterWaiting))
        case .skippedLockedRows: self = .skippedLockedRows
        case .unexpected: self = .unexpected(try c.decode(String.self, forKey: .text))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .occurred: try c.encode(Kind.occurred, forKey: .verdict)
        case .preventedBySnapshot: try c.encode(Kind.preventedBySnapshot, forKey: .verdict)
        case .preventedByWaiting(let role):
            try c.encode(Kind.preventedByWaiting, forKey: .verdict)
            try c.encode(role, forKey: .transaction)
        case .preventedByError(let code, let role, let waited):
            try c.encode(Kind.preventedByError, forKey: .verdict)
            try c.encode(code.rawValue, forKey: .code)
            try c.encode(role, forKey: .transaction)
            try c.encode(waited, forKey: .afterWaiting)
        case .skippedLockedRows: try c.encode(Kind.skippedLockedRows, forKey: .verdict)
        case .unexpected(let text):
            try c.encode(Kind.unexpected, forKey: .verdict)
            try c.encode(text, forKey: .text)
        }
    }
}
