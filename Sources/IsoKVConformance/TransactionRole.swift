import IsoKVCore

/// A transaction's part in a replay: `T1`, `T2`, … in the order the replay's description names them.
///
/// Outcomes name roles rather than ``TransactionID``s, so that the same expected table holds on every backend and
/// in every run; ``Outcome/transactions`` maps each role to the id it had in one run.
///
/// ```swift
/// if case .preventedByError(let code, .t2, _) = outcome.verdict { print("T2 failed with", code) }
/// TransactionRole.t2.description                 // "T2"
/// ```
public struct TransactionRole: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// 1 for `T1`, 2 for `T2`, …
    public let number: Int

    public init(_ number: Int) {
        precondition(number > 0, "transaction roles are numbered from 1")
        self.number = number
    }

    public static let t1 = TransactionRole(1)
    public static let t2 = TransactionRole(2)
    public static let t3 = TransactionRole(3)
    public static let t4 = TransactionRole(4)
    public static let t5 = TransactionRole(5)

    public var description: String { "T\(number)" }

    public static func < (a: TransactionRole, b: TransactionRole) -> Bool { a.number < b.number }

    /// Encoded as its name, `"T2"`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard text.first == "T", let n = Int(text.dropFirst()), n > 0 else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a transaction role: \(text)")
        }
        self.init(n)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
