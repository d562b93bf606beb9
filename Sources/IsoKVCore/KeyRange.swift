/// A key range for scans: `lower` inclusive, `upper` exclusive, nil meaning unbounded.
///
/// ```swift
/// try await tx.scan(.prefix("jobs/"), limit: 10)
/// try await tx.scan(KeyRange(from: "a", to: "m"))
/// ```
public struct KeyRange: Sendable, Hashable {
    public var lower: Bytes?
    public var upper: Bytes?

    public init(from lower: Bytes? = nil, to upper: Bytes? = nil) {
        self.lower = lower
        self.upper = upper
    }

    /// Every key.
    public static let all = KeyRange()

    /// Every key that starts with `prefix`.
    public static func prefix(_ prefix: Bytes) -> KeyRange {
        var upper = prefix.bytes
        while let last = upper.last, last == 0xFF { upper.removeLast() }
        if upper.isEmpty { return KeyRange(from: prefix, to: nil) }
        upper[upper.count - 1] += 1
        return KeyRange(from: prefix, to: Bytes(upper))
    }

    public func contains(_ key: Bytes) -> Bool {
        if let lower, key < lower { return false }
        if let upper, !(key < upper) { return false }
        return true
    }
}
