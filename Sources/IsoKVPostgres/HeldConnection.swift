import IsoKVCore
import IsoKVSync
import Logging
import PostgresNIO

/// A pooled connection leased for longer than one call: a transaction owns one for its whole life.
///
/// postgres-nio lends a pooled connection only for the duration of a closure (`PostgresClient.withConnection`), and a
/// transaction handle outlives any one closure. So ``lease(from:timeout:)`` starts a small task that enters
/// `withConnection`, hands the connection out, and then *suspends* inside the closure until ``release(_:)`` is
/// called; only then does the closure return and the pool take the connection back. Nothing blocks a thread: the
/// lease task is suspended on a continuation, and the caller of `lease` is suspended until the hand-out.
///
/// ```
///  caller (begin)            lease task                       pool
///  lease(from:) ──spawn──▶  withConnection { c in   ◀──────── c
///      ◀──── HeldConnection(c) ─┤
///  … statements on c …          │ suspended on `done`
///  release(.clean) ──────────▶  ┤ (ROLLBACK first if .rollback)
///                               } ────────────────────────▶   c back in the pool
/// ```
///
/// Invariants: the connection is used only by its holder between `lease` and `release`; `release` is idempotent;
/// a connection released with `.rollback` is rolled back before the pool sees it, so the pool never holds a
/// connection inside a transaction (a handle dropped without commit or rollback releases with `.rollback` from its
/// `deinit`).
final class HeldConnection: Sendable {
    enum Release: Sendable {
        /// The connection is outside any transaction (after COMMIT or ROLLBACK, or it is closed).
        case clean
        /// The connection may be inside a transaction: roll it back before it returns to the pool.
        case rollback
    }

    let connection: PostgresConnection
    /// Resumed once by ``release(_:)``; nil afterwards.
    private let done: Locked<CheckedContinuation<Release, Never>?>

    private init(connection: PostgresConnection, done: CheckedContinuation<Release, Never>) {
        self.connection = connection
        self.done = Locked(done)
    }

    /// Gives the connection back to the pool (after a ROLLBACK if `how` is `.rollback`). Idempotent.
    func release(_ how: Release) {
        let continuation = done.withLock { c -> CheckedContinuation<Release, Never>? in
            defer { c = nil }
            return c
        }
        continuation?.resume(returning: how)
    }

    /// `08006` if the server closed the connection. Checked before every statement: postgres-nio 1.33 never
    /// completes a query written to a connection whose channel has already closed (the query would hang).
    func checkOpen() throws {
        if connection.isClosed {
            throw IsoKVError(.connectionFailure, "the connection to PostgreSQL was closed by the server")
        }
    }

    static let logger = Logger(label: "isokv.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Leases a connection from `client`, waiting at most `timeout` for one (`08006` then). Cancelling the calling
    /// task cancels the wait.
    static func lease(from client: PostgresClient, timeout: Duration) async throws -> HeldConnection {
        let handoff = Handoff()
        let held = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (caller: CheckedContinuation<HeldConnection, any Error>) in
                guard handoff.start(caller) else { return }  // cancelled before it began
                let leaseTask = Task {
                    do {
                        try await client.withConnection { connection in
                            let how = await withCheckedContinuation { (done: CheckedContinuation<Release, Never>) in
                                let held = HeldConnection(connection: connection, done: done)
                                if !handoff.deliver(held) { held.release(.clean) }
                            }
                            if how == .rollback, !connection.isClosed {
                                _ = try? await connection.query("ROLLBACK", logger: logger)
                            }
                        }
                    } catch {
                        handoff.fail(PostgresErrorMapping.map(error))
                    }
                }
                let timer = Task {
                    try? await Task.sleep(for: timeout)
                    if !Task.isCancelled {
                        handoff.fail(
                            IsoKVError(
                                .connectionFailure,
                                "no PostgreSQL connection within \(timeout) (server unreachable or pool exhausted)"))
                    }
                }
                handoff.attach(leaseTask: leaseTask, timer: timer)
            }
        } onCancel: {
            handoff.fail(CancellationError())
        }
        // The lease task built `held` and resumed us after its `deliver` released the handoff lock; taking that
        // lock here makes the hand-over visible to ThreadSanitizer too (it does not see the continuation's edge).
        handoff.synchronize()
        return held
    }

    /// The rendezvous between ``lease(from:timeout:)``'s caller and its lease task: the caller's continuation is
    /// resumed exactly once, with the connection or with the first failure (lease error, timeout, cancellation).
    /// A connection that arrives after a failure is released at once; a failure cancels the lease task's request.
    private final class Handoff: Sendable {
        private struct State {
            var caller: CheckedContinuation<HeldConnection, any Error>?
            /// A failure that came before ``start(_:)`` (cancellation of an already cancelled task).
            var early: (any Error)?
            var finished = false
            var leaseTask: Task<Void, Never>?
            var timer: Task<Void, Never>?
        }
        private let state = Locked(State())

        /// Records the caller; false (and the caller resumed with it) if a failure came first.
        func start(_ caller: CheckedContinuation<HeldConnection, any Error>) -> Bool {
            let early = state.withLock { s -> (any Error)? in
                if let e = s.early { s.finished = true; return e }
                s.caller = caller
                return nil
            }
            if let early { caller.resume(throwing: early); return false }
            return true
        }

        func attach(leaseTask: Task<Void, Never>, timer: Task<Void, Never>) {
            let finished = state.withLock { s -> Bool in
                s.leaseTask = leaseTask
                s.timer = timer
                return s.finished
            }
            // Already delivered or failed before the tasks were recorded: stop the timer (and, after a
            // failure, the lease request; a delivered connection keeps its task, which waits for `release`).
            if finished { timer.cancel() }
        }

        /// Takes and releases the lock: orders what `deliver` did before it with what the caller does after.
        func synchronize() { state.withLock { _ in } }

        /// Returns false if the caller has already been resumed with a failure (the connection is not wanted).
        func deliver(_ held: HeldConnection) -> Bool {
            let (caller, timer) = state.withLock { s in
                defer { s.caller = nil; s.finished = true }
                return (s.caller, s.timer)
            }
            timer?.cancel()
            guard let caller else { return false }
            caller.resume(returning: held)
            return true
        }

        func fail(_ error: any Error) {
            let (caller, leaseTask, timer) = state.withLock { s in
                if s.caller == nil && !s.finished { s.early = s.early ?? error }
                defer { s.caller = nil; if s.early == nil { s.finished = true } }
                return s.caller == nil ? (nil, nil, nil) : (s.caller, s.leaseTask, s.timer)
            }
            guard let caller else { return }
            timer?.cancel()
            leaseTask?.cancel()
            caller.resume(throwing: error)
        }
    }
}
