import IsoKVCore
import IsoKVSync
import Synchronization

// The machinery the replays share (internal): the context of one run, steps that record themselves and tag their
// errors with the role, transactions spawned into their own tasks, and the race that orders a step after another
// transaction's lock wait without sleeping. DESIGN.md, "Synchronising without sleeps", explains the rules.

/// Thrown by a replay when the store did something no verdict describes; the runner turns it into
/// ``Verdict/unexpected(_:)``.
struct Misbehaviour: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An error thrown by one role's step, tagged with the role and the step.
struct StepFailure: Error, Sendable, CustomStringConvertible {
    let role: TransactionRole
    let step: String
    let error: any Error

    /// The store's error, if it is one.
    var storeError: IsoKVError? { error as? IsoKVError }

    /// The codes that resolve a conflict (and so make a verdict): a serialization failure, a deadlock, a lock that
    /// is not available. Any other error in a replay is unexpected.
    static let resolvingCodes: Set<IsoKVError.Code> = [.serializationFailure, .deadlockDetected, .lockNotAvailable]

    var resolvesConflict: Bool { storeError.map { Self.resolvingCodes.contains($0.code) } ?? false }

    var description: String { "\(role) at “\(step)”: \(error)" }
}

/// What a replay returns; the runner adds the ids and the steps to make the ``Outcome``.
struct Finding: Sendable {
    var verdict: Verdict
    var detail: String
    var error: IsoKVError?

    init(_ verdict: Verdict, _ detail: String, error: IsoKVError? = nil) {
        self.verdict = verdict
        self.detail = detail
        self.error = error
    }
}

/// The record of one run, shared by the replay and the tasks it spawns.
final class ReplayLog: Sendable {
    private struct State {
        /// Steps in the order they were taken (appended by whichever task takes them).
        var steps: [String] = []
        /// Each role's transaction id, recorded when it begins.
        var transactions: [TransactionRole: TransactionID] = [:]
        /// Cancels the tasks of spawned transactions; called if the replay stalls, so that they stop waiting.
        var cancellers: [@Sendable () -> Void] = []
    }

    private let state = Locked(State())

    func record(_ step: String) { state.withLock { $0.steps.append(step) } }
    func name(_ role: TransactionRole, _ id: TransactionID) { state.withLock { $0.transactions[role] = id } }
    func onStall(_ cancel: @escaping @Sendable () -> Void) { state.withLock { $0.cancellers.append(cancel) } }

    var steps: [String] { state.withLock { $0.steps } }
    var transactions: [TransactionRole: TransactionID] { state.withLock { $0.transactions } }

    func cancelParticipants() {
        let cancellers = state.withLock { $0.cancellers }
        for cancel in cancellers { cancel() }
    }

    /// `id` as the role that had it in this run (`T1`), or the id itself.
    func role(of id: TransactionID) -> String {
        transactions.first { $0.value == id }.map { $0.key.description } ?? id.description
    }
}

/// True for the first caller of `claim()` only.
final class Once: Sendable {
    private let taken = Atomic<Bool>(false)
    func claim() -> Bool {
        taken.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }
}

/// A transaction running in its own task (because one of its steps blocks); its id is known before it acts.
struct Participant<Value: Sendable>: Sendable {
    let role: TransactionRole
    let id: TransactionID
    let task: Task<Value, any Error>

    var result: Result<Value, any Error> { get async { await task.result } }
}

/// Everything one run of one replay needs.
struct ReplayContext<Backend: ConformanceBackend>: Sendable {
    typealias Store = Backend.Store
    typealias Transaction = Backend.Store.Transaction

    let backend: Backend
    let store: Store
    let level: IsolationLevel
    let lockTimeout: Duration
    let log: ReplayLog

    var capabilities: BackendCapabilities { backend.capabilities }

    // MARK: Steps

    /// Records `"\(role) \(what)"` and runs `body`; an error it throws comes out as a ``StepFailure`` naming the
    /// role and the step (an inner step's failure passes through unchanged).
    func step<T>(_ role: TransactionRole, _ what: String, _ body: () async throws -> T) async throws -> T {
        log.record("\(role) \(what)")
        do {
            return try await body()
        } catch let failure as StepFailure {
            throw failure
        } catch {
            throw StepFailure(role: role, step: what, error: error)
        }
    }

    /// Runs `body`; returns the failure if a step failed with a code that resolves a conflict (40001, 40P01,
    /// 55P03), nil if it succeeded. Other errors pass through.
    func attempt(_ body: () async throws -> Void) async throws -> StepFailure? {
        do {
            try await body()
            return nil
        } catch let failure as StepFailure where failure.resolvesConflict {
            return failure
        }
    }

    /// Begins `role`'s transaction at the level under test.
    func begin(_ role: TransactionRole, readOnly: Bool = false) async throws -> Transaction {
        let tx = try await step(role, readOnly ? "begins (read-only)" : "begins") {
            try await store.begin(level, readOnly: readOnly)
        }
        log.name(role, tx.id)
        return tx
    }

    /// Begins `role`'s transaction in a new task and runs `body` in it; returns once the transaction exists. If
    /// `body` throws, the transaction is rolled back. With `deferrable`, the transaction is begun by
    /// ``ConformanceBackend/beginDeferrable(in:)``.
    func spawn<Value: Sendable>(
        _ role: TransactionRole, deferrable: Bool = false,
        _ body: @escaping @Sendable (Transaction) async throws -> Value
    ) async throws -> Participant<Value> {
        let (ids, announce) = AsyncStream.makeStream(of: TransactionID.self)
        let task = Task { () async throws -> Value in
            let tx = try await step(role, deferrable ? "begins (serializable, read-only, deferrable)" : "begins") {
                deferrable
                    ? try await backend.beginDeferrable(in: store) : try await store.begin(level, readOnly: false)
            }
            log.name(role, tx.id)
            announce.yield(tx.id)
            announce.finish()
            do {
                return try await body(tx)
            } catch {
                try? await tx.rollback()
                throw error
            }
        }
        log.onStall { task.cancel() }
        var iterator = ids.makeAsyncIterator()
        guard let id = await iterator.next() else {
            _ = try await task.value  // begin failed: throws its error
            throw Misbehaviour("\(role) ended before it began")
        }
        return Participant(role: role, id: id, task: task)
    }

    // MARK: Ordering after a wait

    /// Returns true once `participant` waits for a row lock on `key`, or false if it ended first (it never waited:
    /// the store let it through or failed it at once). Never sleeps: the backend's hook and the participant's end
    /// race, and the first one decides. If the participant ended first, the hook's observation is abandoned.
    func waitsForLock<Value>(_ participant: Participant<Value>, on key: Bytes) async throws -> Bool {
        let (backend, store, id) = (self.backend, self.store, participant.id)
        let waiting = try await firstOf(participant) {
            try await backend.waitUntilWaiting(id, on: key, in: store)
        }
        log.record(
            waiting
                ? "\(participant.role) waits for a lock on \(key.plain)"
                : "\(participant.role) ended without waiting for a lock on \(key.plain)")
        return waiting
    }

    /// Returns true once deferrable `participant` waits for a safe snapshot, false if it ended first.
    func waitsForSafeSnapshot<Value>(_ participant: Participant<Value>) async throws -> Bool {
        let (backend, store, id) = (self.backend, self.store, participant.id)
        let waiting = try await firstOf(participant) { try await backend.waitUntilDeferred(id, in: store) }
        log.record(
            waiting
                ? "\(participant.role) waits for a safe snapshot"
                : "\(participant.role) ended without waiting for a safe snapshot")
        return waiting
    }

    /// True if `observation` returns before `participant` ends, false if the participant ends first (the observation
    /// is cancelled then: it may never return otherwise); throws what `observation` throws if it fails first. A
    /// participant that loses is left running: it always ends (it waits on locks this replay holds).
    private func firstOf<Value>(
        _ participant: Participant<Value>,
        observation: @escaping @Sendable () async throws -> Void
    ) async throws -> Bool {
        let task = participant.task
        return try await withCheckedThrowingContinuation { (first: CheckedContinuation<Bool, any Error>) in
            let once = Once()
            let observer = Task {
                do {
                    try await observation()
                    if once.claim() { first.resume(returning: true) }
                } catch {
                    if once.claim() { first.resume(throwing: error) }
                }
            }
            Task {
                _ = await task.result
                if once.claim() {
                    first.resume(returning: false)
                    observer.cancel()
                }
            }
        }
    }

    // MARK: Data

    /// Writes the pairs in one committed transaction.
    func seed(_ pairs: KeyValuePairs<Bytes, Bytes>) async throws {
        log.record("seed " + pairs.map { "\($0.key.plain) = \($0.value.plain)" }.joined(separator: ", "))
        try await store.transaction(.readCommitted, retry: .none) { tx in
            for (key, value) in pairs { try await tx.put(key, value) }
        }
    }

    /// The committed value of `key`.
    func committed(_ key: Bytes) async throws -> Bytes? {
        try await store.get(key)?.value
    }

    /// Throws a ``Misbehaviour`` naming every key whose committed value is not the one given (nil: absent).
    func expectCommitted(_ expected: KeyValuePairs<Bytes, Bytes?>, _ context: String) async throws {
        var wrong: [String] = []
        for (key, value) in expected {
            let actual = try await committed(key)
            if actual != value { wrong.append("\(key.plain) = \(describe(actual)) (expected \(describe(value)))") }
        }
        if !wrong.isEmpty { throw Misbehaviour("\(context): " + wrong.joined(separator: ", ")) }
    }

    /// After a `40001`/`40P01`: the contract says the transaction is dead — a read fails with `25P02`, `commit()`
    /// fails with `25P02`, `rollback()` succeeds.
    func expectDead(_ tx: Transaction, _ role: TransactionRole, reading key: Bytes) async throws {
        do {
            _ = try await tx.get(key)
            throw Misbehaviour("\(role) could still read after it was aborted; expected 25P02")
        } catch let e as IsoKVError where e.code == .transactionAborted {}
        do {
            try await tx.commit()
            throw Misbehaviour("\(role) committed after it was aborted; expected 25P02")
        } catch let e as IsoKVError where e.code == .transactionAborted {}
        try await step(role, "rolls back") { try await tx.rollback() }
    }

    /// After a `55P03`: per ``BackendCapabilities/failedStatementAbortsTransaction``, the transaction either reads
    /// on (and sees `expected` at `key`) or is dead.
    func expectStatementFailureHandled(
        _ tx: Transaction, _ role: TransactionRole, reading key: Bytes,
        expected: Bytes?
    ) async throws {
        if capabilities.failedStatementAbortsTransaction {
            try await expectDead(tx, role, reading: key)
        } else {
            let value = try await step(role, "reads \(key.plain) after its 55P03") { try await tx.get(key) }
            if value != expected {
                throw Misbehaviour(
                    "after its 55P03, \(role) read \(key.plain) = \(describe(value)), expected \(describe(expected))")
            }
        }
    }

    // MARK: Findings

    /// The finding for a conflict resolved by `failure`'s error.
    func prevented(by failure: StepFailure, afterWaiting: Bool, _ context: String = "") -> Finding {
        let error = failure.storeError!
        var text = "\(failure.role) failed with \(error.code) at “\(failure.step)”"
        if afterWaiting { text += " after waiting" }
        var named: [String] = []
        if let key = error.key { named.append("key \(key.plain)") }
        if let other = error.otherTransaction { named.append("other transaction \(log.role(of: other))") }
        if !named.isEmpty { text += " (" + named.joined(separator: ", ") + ")" }
        if !context.isEmpty { text += "; " + context }
        return Finding(.preventedByError(error.code, failure.role, afterWaiting: afterWaiting), text, error: error)
    }

    /// The finding for a participant that ended without waiting where it should have waited: if it failed with a
    /// resolving code, that resolved the conflict at once; if it succeeded, `whenSucceeded` says what went wrong.
    func endedWithoutWaiting<Value>(_ participant: Participant<Value>, whenSucceeded: String) async throws -> Finding {
        switch await participant.result {
        case .success:
            throw Misbehaviour(whenSucceeded)
        case .failure(let failure as StepFailure) where failure.resolvesConflict:
            return prevented(by: failure, afterWaiting: false)
        case .failure(let error):
            throw error
        }
    }
}

/// A value as replays print it: `x` (its text when printable), or `absent`.
func describe(_ value: Bytes?) -> String { value.map(\.plain) ?? "absent" }

extension Bytes {
    /// The text without quotes when printable (`doctor/alice`), else the `0x…` form.
    var plain: String {
        let quoted = description
        return quoted.hasPrefix("\"") ? String(quoted.dropFirst().dropLast()) : quoted
    }
}
