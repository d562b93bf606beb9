import IsoKVCore

/// Runs replays against a backend: one replay at one level on a fresh store (``run(_:at:)``), on a store you
/// provide (``run(_:at:on:)``, to inspect the store afterwards), or the whole suite (``runAll(_:levels:)``) into a
/// ``ConformanceReport``.
///
/// ```swift
/// let runner = ConformanceRunner(backend: EmbeddedBackend())
/// let outcome = try await runner.run(.writeSkew, at: .serializable)
/// print(outcome.verdict, "—", outcome.detail)          // T2 failed 40001 — T2 failed with 40001 at “commits” (key doctor/alice, …
/// let report = await runner.runAll()
/// if !report.conforms { print(report.matrix()) }
/// ```
///
/// Replays run one after another, each on its own store. A replay never sleeps to order its steps; ``stallTimeout``
/// only bounds a run, so that a store that never wakes a waiter yields an ``Verdict/unexpected(_:)`` verdict
/// instead of a hang.
public struct ConformanceRunner<Backend: ConformanceBackend>: Sendable {
    public var backend: Backend
    /// The longest one replay run may take; past it the run is reported as stalled (naming its last step), its
    /// spawned transactions are cancelled and the run is abandoned. Default 10 s.
    public var stallTimeout: Duration
    /// The lock timeout ``Replay/lockTimeout`` configures its store with (``storeOptions(for:)``). Default 50 ms.
    public var lockTimeout: Duration

    public init(backend: Backend, stallTimeout: Duration = .seconds(60), lockTimeout: Duration = .milliseconds(50)) {
        self.backend = backend
        self.stallTimeout = stallTimeout
        self.lockTimeout = lockTimeout
    }

    /// How a store for `replay` must be configured: the lock timeout for ``Replay/lockTimeout``, nothing otherwise.
    public func storeOptions(for replay: Replay) -> StoreOptions {
        StoreOptions(lockTimeout: replay == .lockTimeout ? lockTimeout : nil)
    }

    /// Runs `replay` at `level` on a fresh store from ``ConformanceBackend/makeStore(_:)``, discarded afterwards.
    ///
    /// Throws ``ConformanceError`` if the replay does not apply at `level` or needs a capability the backend lacks,
    /// and what `makeStore` throws. Whatever the store does during the replay is the returned outcome.
    public func run(_ replay: Replay, at level: IsolationLevel) async throws -> Outcome {
        try checkRunnable(replay, at: level)
        let store = try await backend.makeStore(storeOptions(for: replay))
        let outcome = await execute(replay, at: level, on: store)
        await backend.discardStore(store)
        return outcome
    }

    /// Runs `replay` at `level` on `store`, which must be empty and configured with ``storeOptions(for:)``; the
    /// store is left as the replay leaves it, for tests that check more than the outcome (statistics, the ids in
    /// errors).
    ///
    /// ```swift
    /// let db = Database.inMemory()
    /// let outcome = try await runner.run(.deadlockOfTwo, at: .readCommitted, on: db)
    /// #expect(db.statistics().aborts.deadlocks == 1)
    /// ```
    public func run(_ replay: Replay, at level: IsolationLevel, on store: Backend.Store) async throws -> Outcome {
        try checkRunnable(replay, at: level)
        return await execute(replay, at: level, on: store)
    }

    /// Runs every replay in `replays` at every level of `levels` it applies to and reports each cell: expected,
    /// actual, and whether they match. A cell whose replay needs a capability the backend lacks is reported as not
    /// run; a store that cannot be made is an unexpected outcome in that cell.
    public func runAll(
        _ replays: [Replay] = Replay.allCases,
        levels: [IsolationLevel] = IsolationLevel.allCases
    ) async -> ConformanceReport {
        var rows: [ConformanceReport.Row] = []
        let clock = ContinuousClock()
        for replay in replays {
            for level in levels {
                let expected = replay.expectedOutcome(at: level, on: backend.capabilities)
                guard case .verdict(let verdict) = expected else {
                    if replay.levels.contains(level) {
                        rows.append(
                            ConformanceReport.Row(
                                replay: replay, level: level, expected: expected, actual: nil,
                                detail: expected.description))
                    }
                    continue
                }
                let start = clock.now
                let outcome: Outcome
                do {
                    outcome = try await run(replay, at: level)
                } catch {
                    outcome = Outcome(
                        verdict: .unexpected("could not run: \(error)"), detail: "could not run: \(error)")
                }
                let seconds = (clock.now - start) / .seconds(1)
                rows.append(
                    ConformanceReport.Row(
                        replay: replay, level: level, expected: expected,
                        actual: outcome.verdict, detail: outcome.detail,
                        steps: outcome.verdict == verdict ? [] : outcome.steps,
                        seconds: seconds))
            }
        }
        return ConformanceReport(backend: backend.name, capabilities: backend.capabilities, rows: rows)
    }

    // MARK: Internals

    private func checkRunnable(_ replay: Replay, at level: IsolationLevel) throws {
        guard replay.levels.contains(level) else { throw ConformanceError.notApplicable(replay, level) }
        if let missing = replay.requirements.first(where: { !backend.capabilities.satisfies($0) }) {
            throw ConformanceError.unsupported("\(replay) \(missing)")
        }
    }

    /// Runs the replay in a task of its own, bounded by ``stallTimeout``, and turns what it returns or throws into
    /// an outcome.
    private func execute(_ replay: Replay, at level: IsolationLevel, on store: Backend.Store) async -> Outcome {
        let log = ReplayLog()
        let context = ReplayContext(backend: backend, store: store, level: level, lockTimeout: lockTimeout, log: log)
        let task = Task { try await context.run(replay) }
        let finding: Finding
        switch await finished(task, within: stallTimeout) {
        case nil:
            // The last step is read before the participants are cancelled: once cancelled, they end, and the replay
            // may log that ("T2 ended without waiting …") before this line, hiding the step it stalled on.
            let last = log.steps.last ?? "none"
            task.cancel()
            log.cancelParticipants()
            let text = "did not finish within \(milliseconds(stallTimeout)); last step: \(last)"
            finding = Finding(.unexpected("stalled"), text)
        case .success(let found)?:
            finding = found
        case .failure(let failure as StepFailure)? where failure.resolvesConflict:
            finding = context.prevented(by: failure, afterWaiting: false)
        case .failure(let misbehaviour as Misbehaviour)?:
            finding = Finding(.unexpected(misbehaviour.description), misbehaviour.description)
        case .failure(let error)?:
            finding = Finding(.unexpected("\(error)"), "\(error)")
        }
        return Outcome(
            verdict: finding.verdict, detail: finding.detail, error: finding.error,
            transactions: log.transactions, steps: log.steps)
    }

    /// The task's result, or nil if it has not finished within `limit` (the task is then left running). The timer
    /// only bounds the wait; it orders nothing.
    private func finished<T: Sendable>(_ task: Task<T, any Error>, within limit: Duration) async
        -> Result<T, any Error>?
    {
        await withCheckedContinuation { (first: CheckedContinuation<Result<T, any Error>?, Never>) in
            let once = Once()
            let timer = Task {
                try? await Task.sleep(for: limit)
                if once.claim() { first.resume(returning: nil) }
            }
            Task {
                let result = await task.result
                if once.claim() { first.resume(returning: result) }
                timer.cancel()
            }
        }
    }
}
