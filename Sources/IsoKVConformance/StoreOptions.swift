/// How ``ConformanceBackend/makeStore(_:)`` must configure a fresh store for one replay.
///
/// ```swift
/// func makeStore(_ options: StoreOptions) async throws -> Database {
///     Database.inMemory(Database.Configuration(lockTimeout: options.lockTimeout))
/// }
/// ```
public struct StoreOptions: Hashable, Sendable {
    /// How long a blocking row-lock request may wait before it fails with `55P03`; nil: no limit. Set only for
    /// ``Replay/lockTimeout`` (to ``ConformanceRunner/lockTimeout``).
    public var lockTimeout: Duration?

    public init(lockTimeout: Duration? = nil) {
        self.lockTimeout = lockTimeout
    }
}
