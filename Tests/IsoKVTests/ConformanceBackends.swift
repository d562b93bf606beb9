@_spi(Testing) import IsoKV
import IsoKVConformance
import IsoKVTestSupport
import Testing

// The embedded engine as an IsoKVConformance backend, and a wrapper that runs some levels as others (to check the
// capability-dependent cells of the expected table against a store that really behaves that way).

extension BackendCapabilities {
    /// What the embedded engine declares.
    static let embeddedEngine = BackendCapabilities(
        readUncommitted: .dirtyReads, serializable: .serializableSnapshotIsolation,
        deadlockVictim: .requesterClosingCycle, observableLockWaits: true, savepoints: true, lockTimeout: true,
        deferrableReadOnly: true, failedStatementAbortsTransaction: false)
}

/// `Database.inMemory`, one fresh database per replay run; lock waits and deferrable waits observed through the
/// engine's test hooks.
struct EmbeddedBackend: ConformanceBackend {
    let name = "embedded"
    let capabilities = BackendCapabilities.embeddedEngine

    func makeStore(_ options: StoreOptions) async throws -> Database {
        makeDatabase(lockTimeout: options.lockTimeout)
    }

    func beginDeferrable(in store: Database) async throws -> Transaction {
        try await store.begin(.serializable, readOnly: true, deferrable: true)
    }

    func waitUntilDeferred(_ transaction: TransactionID, in store: Database) async throws {
        await store.waitUntilDeferred(transaction)
    }
}

/// Runs `replay` at `level` on `db` (made with the runner's store options) and expects the verdict of the
/// embedded engine's table; returns the outcome for the engine-specific checks.
@discardableResult
func runReplay(
    _ replay: Replay, at level: IsolationLevel, on db: Database,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws -> Outcome {
    let outcome = try await ConformanceRunner(backend: EmbeddedBackend()).run(replay, at: level, on: db)
    let expected = replay.expectedOutcome(at: level, on: .embeddedEngine)
    #expect(
        outcome.verdict == expected.verdict,
        "\(replay) at \(level): \(outcome.detail)\n\(outcome.steps.joined(separator: "\n"))",
        sourceLocation: sourceLocation)
    return outcome
}

/// A database on which `begin` runs some levels as others: `.readUncommitted` as `.readCommitted` gives
/// PostgreSQL's read uncommitted; `.serializable` as `.snapshot` gives snapshot isolation under the name
/// serializable.
typealias LevelMappingStore = ForwardingStore<Database>

/// The engine behind a ``LevelMappingStore``, declaring `capabilities` (which may or may not tell the truth).
struct LevelMappingBackend: ConformanceBackend {
    let name: String
    let mapping: [IsolationLevel: IsolationLevel]
    let capabilities: BackendCapabilities

    func makeStore(_ options: StoreOptions) async throws -> LevelMappingStore {
        ForwardingStore(makeDatabase(lockTimeout: options.lockTimeout), levels: mapping)
    }
}
