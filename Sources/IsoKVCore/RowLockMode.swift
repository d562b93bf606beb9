/// A row lock mode.
public enum RowLockMode: String, Sendable, Hashable, Codable {
    /// Shared: many transactions may hold it at once; it blocks writers and `.forUpdate` lockers.
    case forShare = "for-share"
    /// Exclusive: blocks every other locker and writer. Every write takes it implicitly.
    case forUpdate = "for-update"

    /// Whether `self` held by one transaction is compatible with `other` requested by another.
    public func isCompatible(with other: RowLockMode) -> Bool { self == .forShare && other == .forShare }

    /// Whether holding `self` already satisfies a request for `other`.
    public func covers(_ other: RowLockMode) -> Bool { self == .forUpdate || other == .forShare }
}
