import IsoKVCore

/// A backend under test: how to make a fresh store, what it can do (``capabilities``), and the observation hooks
/// the replays that order steps after a wait need.
///
/// ```swift
/// struct Embedded: ConformanceBackend {
///     let name = "embedded"
///     let capabilities = BackendCapabilities(readUncommitted: .dirtyReads, …)
///     func makeStore(_ options: StoreOptions) async throws -> Database {
///         Database.inMemory(Database.Configuration(lockTimeout: options.lockTimeout))
///     }
///     // waitUntilWaiting comes from Database's LockWaitObservable conformance.
/// }
/// let report = await ConformanceRunner(backend: Embedded()).runAll()
/// ```
///
/// The hooks observe; they must never change what the store does. They are only called when ``capabilities`` says
/// the backend has them; the defaults throw ``ConformanceError/unsupported(_:)``, except that
/// ``waitUntilWaiting(_:on:in:)`` defaults to the store's own hook when `Store` is ``LockWaitObservable``.
public protocol ConformanceBackend: Sendable {
    associatedtype Store: KeyValueStore

    /// A short name for reports: `"embedded"`, `"postgresql"`.
    var name: String { get }

    /// What the backend can do; the expected outcomes follow from it.
    var capabilities: BackendCapabilities { get }

    /// A fresh, empty store configured with `options`. Each replay run gets its own.
    nonisolated(nonsending) func makeStore(_ options: StoreOptions) async throws -> Store

    /// Releases a store made by ``makeStore(_:)`` once its replay has ended (close connections, drop a schema).
    /// Default: nothing.
    nonisolated(nonsending) func discardStore(_ store: Store) async

    /// Returns once transaction `transaction` is suspended waiting for a row lock on `key` in `store` (at once if it
    /// already is). Needed when ``BackendCapabilities/observableLockWaits``. If the transaction never waits it
    /// returns only when the calling task is cancelled (or throws `CancellationError`): the replays race it against
    /// the transaction's completion and cancel it then.
    nonisolated(nonsending) func waitUntilWaiting(_ transaction: TransactionID, on key: Bytes, in store: Store)
        async throws

    /// Begins a `.serializable`, read-only, deferrable transaction: its first read waits until a snapshot that no
    /// concurrent transaction can make unsafe is available. Needed when ``BackendCapabilities/deferrableReadOnly``.
    nonisolated(nonsending) func beginDeferrable(in store: Store) async throws -> Store.Transaction

    /// Returns once deferrable transaction `transaction` is suspended waiting for a safe snapshot. Needed when
    /// ``BackendCapabilities/deferrableReadOnly``; raced like ``waitUntilWaiting(_:on:in:)``.
    nonisolated(nonsending) func waitUntilDeferred(_ transaction: TransactionID, in store: Store) async throws
}

extension ConformanceBackend {
    nonisolated(nonsending) public func discardStore(_ store: Store) async {}

    nonisolated(nonsending) public func waitUntilWaiting(_ transaction: TransactionID, on key: Bytes, in store: Store)
        async throws
    {
        throw ConformanceError.unsupported("\(name) cannot observe lock waits")
    }

    nonisolated(nonsending) public func beginDeferrable(in store: Store) async throws -> Store.Transaction {
        throw ConformanceError.unsupported("\(name) has no deferrable read-only transactions")
    }

    nonisolated(nonsending) public func waitUntilDeferred(_ transaction: TransactionID, in store: Store) async throws {
        throw ConformanceError.unsupported("\(name) cannot observe deferrable waits")
    }
}

extension ConformanceBackend where Store: LockWaitObservable {
    /// The store's own hook.
    nonisolated(nonsending) public func waitUntilWaiting(_ transaction: TransactionID, on key: Bytes, in store: Store)
        async throws
    {
        await store.waitUntilWaiting(transaction, on: key)
    }
}
