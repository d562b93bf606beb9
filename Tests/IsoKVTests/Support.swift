import IsoKVSync
@_spi(Testing) import IsoKV
import Testing

/// The stores the conformance functions run against. Later backends (PostgreSQL, HTTP) add themselves here.
typealias TestableStore = KeyValueStore & LockWaitObservable

func makeDatabase(lockTimeout: Duration? = nil, limits: Limits = Limits()) -> Database {
    Database.inMemory(Database.Configuration(limits: limits, lockTimeout: lockTimeout))
}

/// Asserts that `body` throws an ``IsoKVError`` with `code`; returns it.
@discardableResult
func expectCode<R>(
    _ code: IsoKVError.Code, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> R
) async -> IsoKVError? {
    do {
        _ = try await body()
        Issue.record("expected \(code), nothing thrown", sourceLocation: sourceLocation)
    } catch let e as IsoKVError {
        #expect(e.code == code, "expected \(code), got \(e)", sourceLocation: sourceLocation)
        return e
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A transaction running in its own task, started by ``spawn(_:_:_:)``: its id is known before it does anything.
struct Spawned<R: Sendable> {
    let id: TransactionID
    let task: Task<R, any Error>
    /// The transaction's result. If the awaiting task is cancelled (a test's time limit), the transaction's task is
    /// cancelled too, so that a lock wait it is in ends instead of keeping the test, and the run, alive.
    var value: R {
        get async throws {
            try await withTaskCancellationHandler {
                try await task.value
            } onCancel: {
                task.cancel()
            }
        }
    }
    /// The outcome as a Result, for asserting on failures (cancels the transaction's task as ``value`` does).
    var result: Result<R, any Error> {
        get async {
            await withTaskCancellationHandler {
                await task.result
            } onCancel: {
                task.cancel()
            }
        }
    }
}

/// Begins a transaction in a new task and runs `body` in it; returns once the transaction exists. `body` decides
/// whether to commit; if it throws, the transaction is rolled back.
func spawn<S: KeyValueStore, R: Sendable>(
    _ store: S, _ level: IsolationLevel, _ body: @escaping @Sendable (S.Transaction) async throws -> R
) async throws -> Spawned<R> {
    let (ids, continuation) = AsyncStream.makeStream(of: TransactionID.self)
    let task = Task { () async throws -> R in
        let tx = try await store.begin(level)
        continuation.yield(tx.id)
        continuation.finish()
        do {
            return try await body(tx)
        } catch {
            try? await tx.rollback()
            throw error
        }
    }
    var iterator = ids.makeAsyncIterator()
    guard let id = await iterator.next() else { _ = try await task.value; fatalError("begin failed") }
    return Spawned(id: id, task: task)
}

/// An async barrier: `arrive()` returns once `parties` tasks have arrived.
actor Barrier {
    private let parties: Int
    private var arrived = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []
    init(_ parties: Int) { self.parties = parties }
    func arrive() async {
        arrived += 1
        if arrived >= parties {
            for w in waiting { w.resume() }
            waiting = []
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }
}

extension Bytes {
    static func int(_ n: Int) -> Bytes { Bytes(Int64(n)) }
}

func value(_ store: some KeyValueStore, _ key: Bytes) async throws -> Bytes? {
    try await store.get(key)?.value
}

/// Writes the given pairs in one committed transaction.
func seed(_ store: some KeyValueStore, _ pairs: [(Bytes, Bytes)]) async throws {
    try await store.transaction(.readCommitted) { tx in
        for (k, v) in pairs { try await tx.put(k, v) }
    }
}

/// Asserts that `db.check(mode)` finds nothing (printing the findings otherwise).
func expectConsistent(
    _ db: Database, _ mode: Database.CheckMode = .quiescent,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let report = db.check(mode)
    #expect(report.isConsistent, "\(report)", sourceLocation: sourceLocation)
}
