@_spi(Testing) import IsoKV
import IsoKVConformance
import IsoKVCore

extension BackendCapabilities {
    /// What the embedded engine declares: true dirty reads at read uncommitted, serializable snapshot isolation, the
    /// requester closing a lock-wait cycle as the deadlock victim, observable lock waits, savepoints, lock timeouts,
    /// deferrable read-only transactions, and failed statements that fail only themselves.
    public static let embeddedEngine = BackendCapabilities(
        readUncommitted: .dirtyReads, serializable: .serializableSnapshotIsolation,
        deadlockVictim: .requesterClosingCycle, observableLockWaits: true, savepoints: true, lockTimeout: true,
        deferrableReadOnly: true, failedStatementAbortsTransaction: false)
}

/// The embedded engine as a conformance backend: a fresh `Database.inMemory` per replay run; lock waits and
/// deferrable waits observed through the engine's test hooks (which observe and never change what it does).
public struct EmbeddedLabBackend: ConformanceBackend {
    public let name = "embedded"
    public let capabilities = BackendCapabilities.embeddedEngine

    public init() {}

    public func makeStore(_ options: StoreOptions) async throws -> Database {
        Database.inMemory(Database.Configuration(lockTimeout: options.lockTimeout))
    }

    public func beginDeferrable(in store: Database) async throws -> Transaction {
        try await store.begin(.serializable, readOnly: true, deferrable: true)
    }

    public func waitUntilDeferred(_ transaction: TransactionID, in store: Database) async throws {
        await store.waitUntilDeferred(transaction)
    }
}
