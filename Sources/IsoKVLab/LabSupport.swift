import IsoKVConformance
import IsoKVCore
import IsoKVSync

/// Where the lab's experiments get their stores: any ``IsoKVConformance/ConformanceBackend``. An experiment asks
/// it for a store per run (`makeStore`), uses it only through the `KeyValueStore` contract, and hands it back
/// (`discardStore`). Every run also writes only under a fresh ``Keyspace``, so a backend that returns the same
/// store every time (an external HTTP server) still gives each run keys nobody else has written.
///
/// ```swift
/// let result = try await LostUpdateExperiment(LostUpdateParameters(operations: 20))
///     .run(.rowLock, on: EmbeddedLabBackend())
/// ```
public typealias LabBackend = ConformanceBackend

/// The keys of one run: everything it writes starts with `lab/<token>/`, the token random per run (not drawn from
/// the experiment's seed, so two runs with the same seed on one server never share keys).
public struct Keyspace: Sendable, Hashable {
    public let prefix: String

    public init() {
        var rng = SystemRandomNumberGenerator()
        prefix = "lab/" + String(rng.next(), radix: 36) + "/"
    }

    /// `lab/<token>/<name>`.
    public func key(_ name: String) -> Bytes { Bytes(prefix + name) }
}

extension ConformanceBackend {
    /// Runs `body` with a fresh store of this backend, then discards it (also when `body` throws).
    nonisolated(nonsending) func withStore<R>(_ body: (Store) async throws -> R) async throws -> R {
        let store = try await makeStore(StoreOptions())
        do {
            let result = try await body(store)
            await discardStore(store)
            return result
        } catch {
            await discardStore(store)
            throw error
        }
    }
}

/// How far a running experiment is: steps done of steps planned, and what it is doing. Experiments advance it; the
/// CLI draws it as a progress bar (on a terminal only). Safe from any task.
///
/// ```swift
/// let progress = LabProgress()
/// progress.plan(10, "lost-update row-lock")
/// progress.advance()
/// print(progress.snapshot)   // (done: 1, total: 10, label: "lost-update row-lock")
/// ```
public final class LabProgress: Sendable {
    private struct State: Sendable {
        var done = 0
        var total = 0
        var label = ""
    }
    private let state = Locked(State())

    public init() {}

    /// Adds `steps` to the steps planned and names what is running.
    public func plan(_ steps: Int, _ label: String) {
        state.withLock {
            $0.total += steps
            $0.label = label
        }
    }

    /// Names what is running now.
    public func label(_ label: String) { state.withLock { $0.label = label } }

    /// One more step (or `steps`) done.
    public func advance(_ steps: Int = 1) { state.withLock { $0.done += steps } }

    public var snapshot: (done: Int, total: Int, label: String) {
        state.withLock { ($0.done, $0.total, $0.label) }
    }
}
