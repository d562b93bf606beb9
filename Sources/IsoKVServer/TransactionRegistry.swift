import Foundation
import IsoKVCore
import IsoKVSync

/// The interactive transactions and scan cursors the server holds open, each owned by one task.
///
/// Ownership model (DESIGN.md, "Transaction ownership"): an engine `Transaction` is not `Sendable`, so it lives in
/// exactly one task, its *owner*, which begins it, then runs the commands that requests send it through an
/// `AsyncStream` (each command resumes the request's continuation with its result), and rolls it back when the
/// stream ends unless a command committed it. A request never touches the handle.
///
/// At most one command per transaction is in flight: ``run(_:kind:_:)`` marks the entry busy before sending and a
/// second request meanwhile gets `55006` at once (never queued: queueing would hide client bugs).
///
/// Lifetimes: a reaper (``reap(now:)``, called by `StoreService`) ends an entry that was idle (not busy) longer than
/// its idle timeout, or that reached its lifetime cap (a busy owner is cancelled: lock and safe-snapshot waits end on
/// cancellation). An ended interactive transaction leaves a *tombstone* with its outcome for `tombstoneLifetime`
/// (at most `maxTombstones`, oldest evicted first): a repeated commit replays it, ops get 410 `25P03`/`25P04`.
///
/// Locking: one `Locked<State>`, a leaf lock held for dictionary updates only, never across an await.
final class TransactionRegistry: Sendable {
    enum Kind: Sendable { case interactive, cursor }

    /// Why an entry ended: the outcome a tombstone keeps.
    enum Outcome: Sendable, Equatable {
        case committed(revision: UInt64?)
        /// Rolled back: by the client (`rollback`), after a failure (`code` 25P02 / 40001 …), by the reaper
        /// (25P03 idle, 25P04 lifetime) or at shutdown (57P01).
        case rolledBack(code: IsoKVError.Code, reason: String)
        /// The commit's fate is unknown (a storage failure while it was being made durable).
        case unknown(reason: String)
    }

    /// A finished interactive transaction.
    struct Tombstone: Sendable {
        var outcome: Outcome
        var ended: ContinuousClock.Instant
    }

    /// What requests send to an owner: `run` executes with the transaction and resumes its request's
    /// continuation; `fail` resumes it with an error instead (the transaction could not begin).
    struct Command: Sendable {
        let run: @Sendable (any StoreTransaction, OwnerState) async -> Void
        let fail: @Sendable (any Error) -> Void
    }

    /// One open transaction or cursor. Guarded by `state`.
    struct Entry {
        let kind: Kind
        /// Commands to the owner; `finish()` ends the owner's loop (it then rolls back unless committed).
        let commands: AsyncStream<Command>.Continuation
        /// The owner task (cancelled to interrupt a waiting command at the lifetime cap or on rollback).
        let task: Task<Void, Never>
        let idleTimeout: Duration
        let deadline: ContinuousClock.Instant
        /// A command is in flight. Invariant: at most one.
        var busy = false
        /// When the last command finished (or the entry was created).
        var lastUsed: ContinuousClock.Instant
        /// Set while draining for a busy entry: end it as soon as its command finishes.
        var endAfterCommand: Outcome?
        /// The cursor's scan parameters (cursors only), to refuse a cursor used with another scan.
        var cursorScope: String?
        /// Why the transaction failed (its first failing op), for `GET /v1/transactions/{id}`; the owner's
        /// `OwnerState.failed` is what ops check.
        var failure: String?
    }

    struct State {
        var entries: [String: Entry] = [:]
        var tombstones: [String: Tombstone] = [:]
        /// Tombstone ids, oldest first (eviction order). May hold ids already evicted by age (skipped).
        var tombstoneOrder: [String] = []
        var tombstoneHead = 0
        var interactiveCount = 0
        var cursorCount = 0
        var draining = false
        /// Owner tasks not yet finished (awaited at shutdown).
        var owners: [String: Task<Void, Never>] = [:]
    }

    let state = Locked(State())
    let limits: ServerLimits
    let metrics: ServerMetrics

    init(limits: ServerLimits, metrics: ServerMetrics) {
        self.limits = limits
        self.metrics = metrics
    }

    // MARK: Opening

    /// 128 random bits, base64url without padding.
    static func newID() -> String {
        var g = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { bytes[i] = UInt8.random(in: 0...255, using: &g) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Starts an owner task that begins a transaction with `begin` and serves commands until ended. Throws `53300`
    /// when too many are open and `57P01` while draining.
    func open(
        kind: Kind, idleTimeout: Duration, lifetime: Duration, cursorScope: String? = nil,
        begin: @escaping @Sendable () async throws -> any StoreTransaction
    ) throws(ServerError) -> String {
        let id = Self.newID()
        let (stream, continuation) = AsyncStream<Command>.makeStream()
        let now = ContinuousClock.now
        let error: ServerError? = state.withLock { s in
            if s.draining { return ServerError(.databaseClosed, "the server is shutting down") }
            switch kind {
            case .interactive where s.interactiveCount >= limits.maxOpenTransactions:
                var e = ServerError(
                    .tooManyTransactions,
                    "too many open transactions (limit \(limits.maxOpenTransactions))")
                e.limit = limits.maxOpenTransactions
                return e
            case .cursor where s.cursorCount >= limits.maxOpenCursors:
                var e = ServerError(.tooManyTransactions, "too many open scan cursors (limit \(limits.maxOpenCursors))")
                e.limit = limits.maxOpenCursors
                return e
            default: break
            }
            let task = Task<Void, Never> { [self] in
                await Self.own(stream: stream, begin: begin)
                self.ownerFinished(id)
            }
            s.entries[id] = Entry(
                kind: kind, commands: continuation, task: task, idleTimeout: idleTimeout,
                deadline: now + lifetime, lastUsed: now, cursorScope: cursorScope)
            s.owners[id] = task
            if kind == .interactive { s.interactiveCount += 1 } else { s.cursorCount += 1 }
            return nil
        }
        if let error { throw error }
        publishCounts()
        return id
    }

    /// The owner's loop: begin, serve commands in order, roll back at the end unless a command ended it.
    private static func own(
        stream: AsyncStream<Command>,
        begin: @Sendable () async throws -> any StoreTransaction
    ) async {
        let owner = OwnerState()
        let tx: any StoreTransaction
        do {
            tx = try await begin()
        } catch {
            for await command in stream { command.fail(error) }
            return
        }
        for await command in stream { await command.run(tx, owner) }
        try? await tx.rollback()  // a no-op after a commit or a rollback
    }

    private func ownerFinished(_ id: String) {
        state.withLock { _ = $0.owners.removeValue(forKey: id) }
    }

    // MARK: Running commands

    /// Runs `body` on transaction `id` in its owner task and returns its result. Throws without running it:
    /// `55006` if a command is in flight, `57P01` while draining (interactive), the tombstone's error for an ended
    /// transaction (`410 25P03/25P04`, `409 25P02`, `404 25P01`), `404 25P01` (interactive) or `410 72000`
    /// (cursor) for an unknown id. `finish` ends the entry after the command with that outcome (commit, or a
    /// cursor's last page).
    func run<R: Sendable>(
        _ id: String, kind: Kind,
        _ body: @escaping @Sendable (any StoreTransaction, OwnerState) async throws -> (R, Outcome?)
    )
        async throws -> R
    {
        let commands = try acquire(id, kind: kind)
        let result: Result<(R, Outcome?), any Error> = await withCheckedContinuation { cont in
            let sent = commands.yield(
                Command(
                    run: { tx, owner in
                        do { cont.resume(returning: .success(try await body(tx, owner))) } catch {
                            cont.resume(returning: .failure(error))
                        }
                    },
                    fail: { error in cont.resume(returning: .failure(error)) }))
            if case .terminated = sent {
                cont.resume(returning: .failure(ServerError(.noActiveTransaction, "the transaction has ended")))
            }
        }
        let ended = release(id, endWith: (try? result.get())?.1)
        switch result {
        case .success(let (value, _)): return value
        case .failure(let error):
            // A command interrupted because the entry was ended meanwhile reports why it ended.
            if error is CancellationError || ended != nil {
                if let why = tombstoneError(id, kind: kind) { throw why }
                if kind == .cursor && error is CancellationError {
                    throw ServerError(.snapshotTooOld, "the cursor expired while the page was read; restart the scan")
                }
            }
            throw error
        }
    }

    private func acquire(_ id: String, kind: Kind) throws(ServerError) -> AsyncStream<Command>.Continuation {
        let outcome: Result<AsyncStream<Command>.Continuation, ServerError> = state.withLock { s in
            guard var e = s.entries[id], e.kind == kind else {
                if kind == .interactive, let t = s.tombstones[id] {
                    return .failure(Self.error(for: t.outcome, id: id))
                }
                return .failure(
                    kind == .cursor
                        ? ServerError(
                            .snapshotTooOld,
                            "the cursor's snapshot is gone (expired, finished or the server restarted); restart the scan without a cursor"
                        )
                        : ServerError(.noActiveTransaction, "no such transaction"))
            }
            if e.busy {
                var err = ServerError(
                    .objectInUse, "another request is running on this \(kind == .cursor ? "cursor" : "transaction")"
                )
                if kind == .interactive { err.transaction = id }
                return .failure(err)
            }
            if s.draining && kind == .interactive {
                var err = ServerError(.databaseClosed, "the server is shutting down; the transaction was rolled back")
                err.transaction = id
                err.outcome = "rolled_back"
                return .failure(err)
            }
            e.busy = true
            s.entries[id] = e
            return .success(e.commands)
        }
        return try outcome.get()
    }

    /// Marks the command done; ends the entry if `endWith` (or a drain request) says so. Returns the outcome if ended.
    @discardableResult
    private func release(_ id: String, endWith: Outcome?) -> Outcome? {
        let ended: Outcome? = state.withLock { s in
            guard var e = s.entries[id] else {
                // Ended while the command ran (a rollback or the reaper won the race). If the command committed
                // (or its commit's fate is unknown), that is the truth the tombstone must replay.
                if let endWith, s.tombstones[id] != nil {
                    switch endWith {
                    case .committed, .unknown: s.tombstones[id]?.outcome = endWith
                    case .rolledBack: break
                    }
                }
                return nil
            }
            e.busy = false
            e.lastUsed = .now
            s.entries[id] = e
            if let outcome = endWith ?? e.endAfterCommand {
                endLocked(&s, id, outcome)
                return outcome
            }
            return nil
        }
        if ended != nil { publishCounts() }
        return ended
    }

    /// An open interactive transaction's state for `GET /v1/transactions/{id}`, without counting as activity.
    func info(_ id: String) -> (busy: Bool, failure: String?)? {
        state.withLock { s in
            guard let e = s.entries[id], e.kind == .interactive else { return nil }
            return (e.busy, e.failure)
        }
    }

    /// Records the first failure of an interactive transaction (for status reads).
    func noteFailure(_ id: String, _ reason: String) {
        state.withLock { s in
            if s.entries[id]?.failure == nil { s.entries[id]?.failure = reason }
        }
    }

    /// Forgets the recorded failure (a rollback to a savepoint made the transaction usable again).
    func clearFailure(_ id: String) {
        state.withLock { $0.entries[id]?.failure = nil }
    }

    /// The scope (scan parameters) a cursor was opened with.
    func cursorScope(_ id: String) -> String? {
        state.withLock { $0.entries[id]?.cursorScope }
    }

    // MARK: Ending

    /// Ends `id` (if open) with `outcome`: removes it, leaves a tombstone (interactive), ends its command stream and,
    /// if a command is in flight, cancels the owner. Returns the owner task to await, if any.
    @discardableResult
    func end(_ id: String, kind: Kind, _ outcome: Outcome) -> Task<Void, Never>? {
        let task: Task<Void, Never>? = state.withLock { s in
            guard let e = s.entries[id], e.kind == kind else { return nil }
            if e.busy { e.task.cancel() }
            endLocked(&s, id, outcome)
            return e.task
        }
        publishCounts()
        return task
    }

    private func endLocked(_ s: inout State, _ id: String, _ outcome: Outcome) {
        guard let e = s.entries.removeValue(forKey: id) else { return }
        e.commands.finish()
        if e.kind == .interactive {
            s.interactiveCount -= 1
            s.tombstones[id] = Tombstone(outcome: outcome, ended: .now)
            s.tombstoneOrder.append(id)
            while s.tombstones.count > limits.maxTombstones, s.tombstoneHead < s.tombstoneOrder.count {
                s.tombstones.removeValue(forKey: s.tombstoneOrder[s.tombstoneHead])
                s.tombstoneHead += 1
            }
            compactTombstoneOrderLocked(&s)
        } else {
            s.cursorCount -= 1
        }
    }

    private func compactTombstoneOrderLocked(_ s: inout State) {
        if s.tombstoneHead > 1024 && s.tombstoneHead * 2 > s.tombstoneOrder.count {
            s.tombstoneOrder.removeFirst(s.tombstoneHead)
            s.tombstoneHead = 0
        }
    }

    /// The stored outcome of an ended interactive transaction, if its tombstone is still kept.
    func tombstone(_ id: String) -> Tombstone? { state.withLock { $0.tombstones[id] } }

    private func tombstoneError(_ id: String, kind: Kind) -> ServerError? {
        guard kind == .interactive, let t = tombstone(id) else { return nil }
        if case .committed = t.outcome { return nil }
        return Self.error(for: t.outcome, id: id)
    }

    /// The error an op (not a commit) gets on an ended transaction.
    static func error(for outcome: Outcome, id: String) -> ServerError {
        var e: ServerError
        switch outcome {
        case .committed:
            e = ServerError(.noActiveTransaction, "the transaction has already committed")
            e.outcome = "committed"
        case .rolledBack(let code, let reason):
            switch code {
            case .idleTimeout, .transactionTimeout, .databaseClosed:
                e = ServerError(code, "the transaction was rolled back: \(reason)")
            case .noActiveTransaction:
                e = ServerError(.noActiveTransaction, "the transaction was rolled back: \(reason)")
            default:
                e = ServerError(.transactionAborted, "the transaction was rolled back: \(reason)")
            }
            e.outcome = "rolled_back"
        case .unknown(let reason):
            e = ServerError(.storageFailure, "the transaction's outcome is unknown: \(reason)")
            e.outcome = "unknown"
        }
        e.transaction = id
        return e
    }

    /// Ends idle and expired entries and drops old tombstones. Called periodically by the reaper.
    func reap(now: ContinuousClock.Instant = .now) {
        var ended = false
        state.withLock { s in
            for (id, e) in s.entries {
                if now >= e.deadline {
                    if e.busy { e.task.cancel() }
                    endLocked(
                        &s, id,
                        e.kind == .cursor
                            ? .rolledBack(code: .snapshotTooOld, reason: "cursor lifetime")
                            : .rolledBack(code: .transactionTimeout, reason: "lifetime cap reached"))
                    ended = true
                } else if !e.busy, now - e.lastUsed >= e.idleTimeout {
                    endLocked(
                        &s, id,
                        e.kind == .cursor
                            ? .rolledBack(code: .snapshotTooOld, reason: "cursor idle")
                            : .rolledBack(code: .idleTimeout, reason: "idle timeout"))
                    ended = true
                }
            }
            while s.tombstoneHead < s.tombstoneOrder.count {
                let id = s.tombstoneOrder[s.tombstoneHead]
                guard let t = s.tombstones[id] else { s.tombstoneHead += 1; continue }
                guard now - t.ended >= limits.tombstoneLifetime else { break }
                s.tombstones.removeValue(forKey: id)
                s.tombstoneHead += 1
            }
            compactTombstoneOrderLocked(&s)
        }
        if ended { publishCounts() }
    }

    // MARK: Shutdown

    /// First step of a graceful shutdown: refuse new transactions and ops (`57P01`), end every idle entry now and
    /// every busy one as soon as its command finishes (an in-flight commit completes).
    func beginDraining() {
        state.withLock { s in
            s.draining = true
            for (id, e) in s.entries {
                let outcome = Outcome.rolledBack(code: .databaseClosed, reason: "server shutdown")
                if e.busy {
                    s.entries[id]?.endAfterCommand = outcome
                } else {
                    endLocked(&s, id, outcome)
                }
            }
        }
        publishCounts()
    }

    var isDraining: Bool { state.withLock { $0.draining } }

    /// Last step: end everything still open (cancelling busy owners) and wait until every owner has rolled back.
    func shutdown() async {
        let tasks: [Task<Void, Never>] = state.withLock { s in
            s.draining = true
            for (id, e) in s.entries {
                if e.busy { e.task.cancel() }
                endLocked(&s, id, .rolledBack(code: .databaseClosed, reason: "server shutdown"))
            }
            return Array(s.owners.values)
        }
        publishCounts()
        for t in tasks { await t.value }
    }

    private func publishCounts() {
        let (i, c) = state.withLock { ($0.interactiveCount, $0.cursorCount) }
        metrics.setOpen(interactive: i, cursors: c)
    }
}

/// What an owner task knows about its transaction besides the engine handle. Touched only by the owner task
/// (commands run there one at a time), hence `@unchecked Sendable`: it is created and used in that task only.
final class OwnerState: @unchecked Sendable {
    /// Set by the first failing op (PostgreSQL semantics: the transaction is failed until rolled back).
    var failed: IsoKVError?
    /// Distinct keys written and value bytes written (the server's caps on one interactive transaction).
    var writtenKeys: Set<Bytes> = []
    var writtenBytes = 0
    /// The cursor position (cursors only): the last key returned.
    var lastKey: Bytes?
    /// A savepoint and the write caps' counts when it was made (restored by a rollback to it).
    struct Mark {
        var savepoint: Savepoint
        var writtenKeys: Set<Bytes>
        var writtenBytes: Int
    }
    /// Open savepoints by number (numbers are never reused within the transaction).
    var savepoints: [Int: Mark] = [:]
    var nextSavepoint = 0
}
