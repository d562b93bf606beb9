import IsoKVCore

/// A ``KeyValueStore`` that forwards every call to `base`, with two test seams: `begin` may run a level as another
/// (`levels`), and `afterGet` runs after each single-key `get` returned (for instance another writer's write of
/// the key, so that a compare-and-set on the version just read always loses). The tests' one forwarding wrapper.
///
/// ```swift
/// // Snapshot isolation under the name serializable:
/// let store = ForwardingStore(db, levels: [.serializable: .snapshot])
/// ```
public struct ForwardingStore<Base: KeyValueStore>: KeyValueStore {
    public typealias Transaction = Base.Transaction
    public let base: Base
    public let levels: [IsolationLevel: IsolationLevel]
    public let afterGet: (@Sendable (Bytes) async throws -> Void)?

    public init(
        _ base: Base, levels: [IsolationLevel: IsolationLevel] = [:],
        afterGet: (@Sendable (Bytes) async throws -> Void)? = nil
    ) {
        self.base = base
        self.levels = levels
        self.afterGet = afterGet
    }

    public func begin(_ isolation: IsolationLevel, readOnly: Bool) async throws -> Transaction {
        try await base.begin(levels[isolation] ?? isolation, readOnly: readOnly)
    }
    public func get(_ key: Bytes) async throws -> VersionedValue? {
        let v = try await base.get(key)
        try await afterGet?(key)
        return v
    }
    @discardableResult
    public func put(_ key: Bytes, _ value: Bytes) async throws -> UInt64 { try await base.put(key, value) }
    @discardableResult
    public func put(_ key: Bytes, _ value: Bytes, ifVersion version: UInt64) async throws -> UInt64 {
        try await base.put(key, value, ifVersion: version)
    }
    @discardableResult
    public func put(_ key: Bytes, _ value: Bytes, ifAbsent: Bool) async throws -> UInt64 {
        try await base.put(key, value, ifAbsent: ifAbsent)
    }
    @discardableResult
    public func delete(_ key: Bytes) async throws -> Bool { try await base.delete(key) }
    public func delete(_ key: Bytes, ifVersion version: UInt64) async throws {
        try await base.delete(key, ifVersion: version)
    }
    @discardableResult
    public func increment(_ key: Bytes, by delta: Int64) async throws -> Int64 {
        try await base.increment(key, by: delta)
    }
}

extension ForwardingStore: LockWaitObservable where Base: LockWaitObservable {
    public func waitUntilWaiting(_ transaction: TransactionID, on key: Bytes) async {
        await base.waitUntilWaiting(transaction, on: key)
    }
}
