/// Identifies a transaction in errors and in test hooks. Unique within one store's lifetime.
public struct TransactionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: TransactionID, b: TransactionID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "tx\(rawValue)" }
}
