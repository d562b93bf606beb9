import IsoKVCore
import IsoKVSync
import Synchronization

/// Row-lock waits, deadlock detection and the test hook that observes waits.
///
/// The locks themselves live in each key's ``ChainState`` (holders and a FIFO of waiters), so taking an
/// uncontended lock touches only that key. This type handles what needs a global view: the wait-for graph.
///
/// Locks: `graph` may be held while taking a chain's lock, never the reverse (the full order: DESIGN.md,
/// "Lock order").
final class LockManager: Sendable {
    /// Who waits on which chain, and the test observers. See ``WaitGraph``.
    let graph = Locked(WaitGraph())
    /// Source of unique wait tickets.
    private let nextTicket = Atomic<UInt64>(1)
    /// Lock requests with `LockWait.block` that found a conflicting holder and waited, since the database was
    /// created. Only grows (relaxed: a statistic, read by ``Database/statistics()``).
    let waits = Atomic<Int>(0)
    /// Nanoseconds those requests spent between finding the conflict and returning, whatever the outcome (granted,
    /// deadlock victim, timeout, cancellation). Added when a wait ends, so a wait in progress is not in it yet.
    let waitNanoseconds = Atomic<Int>(0)

    enum Acquired {
        /// Already held in a mode covering the request.
        case held
        /// Granted (at once or after a wait); the mode held before.
        case granted(previous: RowLockMode?)
        /// Locked by another transaction and `wait == .skipLocked`.
        case skipped
        /// The chain was retired by garbage collection before the request got in: look the key up again.
        case retired
    }

    /// Takes `txid`'s row lock on `chain` in `mode`.
    ///
    /// Fast path: granted under the chain's lock if compatible. Slow path: `.noWait` throws `55P03`, `.skipLocked`
    /// returns `.skipped`, `.block` enqueues a waiter and suspends; before suspending, the requester runs deadlock
    /// detection and, if its wait closes a cycle, leaves the queue and throws `40P01` (the requester is the victim,
    /// as in PostgreSQL where the backend that finds the cycle aborts itself). A timeout throws `55P03`; task
    /// cancellation throws `CancellationError`.
    nonisolated(nonsending) func acquire(
        _ chain: KeyChain, txid: UInt64, mode: RowLockMode, wait: LockWait, timeout: Duration?
    )
        async throws -> Acquired
    {
        enum Fast { case retired, held, granted(RowLockMode?), conflict(UInt64, RowLockMode?) }
        let fast: Fast = chain.state.withLock { s in
            if s.retired { return .retired }
            switch s.tryAcquireLocked(txid, mode) {
            case .held: return .held
            case .granted(let previous): return .granted(previous)
            case .conflict(let blocker): return .conflict(blocker, s.heldMode(txid))
            }
        }
        let previous: RowLockMode?
        switch fast {
        case .retired: return .retired
        case .held: return .held
        case .granted(let p): return .granted(previous: p)
        case .conflict(let blocker, let held):
            switch wait {
            case .noWait:
                throw IsoKVError(
                    .lockNotAvailable, "could not obtain \(mode.rawValue) lock on row (no-wait)",
                    key: chain.key, otherTransaction: TransactionID(rawValue: blocker))
            case .skipLocked:
                return .skipped
            case .block:
                previous = held
            }
        }
        waits.wrappingAdd(1, ordering: .relaxed)
        let start = ContinuousClock.now
        defer {
            let waited = ContinuousClock.now - start
            let nanoseconds = waited.components.seconds * 1_000_000_000 + waited.components.attoseconds / 1_000_000_000
            waitNanoseconds.wrappingAdd(Int(nanoseconds), ordering: .relaxed)
        }
        let granted = try await waitForLock(
            chain, txid: txid, mode: mode, upgrade: previous == .forShare,
            timeout: timeout)
        return granted ? .granted(previous: previous) : .retired
    }

    /// Returns true once granted, false if the chain turned out to be retired.
    nonisolated(nonsending) private func waitForLock(
        _ chain: KeyChain, txid: UInt64, mode: RowLockMode, upgrade: Bool, timeout: Duration?
    )
        async throws -> Bool
    {
        let ticket = nextTicket.wrappingAdd(1, ordering: .relaxed).oldValue
        var timeoutTask: Task<Void, Never>?
        defer {
            timeoutTask?.cancel()
            graph.withLock { $0.endWaitLocked(txid) }
        }
        do {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    enum Enqueue { case grantedNow, retired, queued }
                    let outcome: Enqueue = chain.state.withLock { s in
                        if s.retired { return .retired }
                        // Re-check: the holder may have gone between the fast path and here.
                        switch s.tryAcquireLocked(txid, mode) {
                        case .held, .granted: return .grantedNow
                        case .conflict: break
                        }
                        s.enqueueLocked(
                            LockWaiter(
                                txid: txid, mode: mode, ticket: ticket, isUpgrade: upgrade,
                                continuation: continuation))
                        return .queued
                    }
                    switch outcome {
                    case .grantedNow: continuation.resume(); return
                    case .retired: continuation.resume(throwing: ChainRetired()); return
                    case .queued: break
                    }
                    // Announce the wait and look for a cycle through it.
                    let (cycle, observers) = graph.withLock { g in g.beginWaitLocked(txid, on: chain) }
                    for o in observers { o.resume() }
                    if let cycle {
                        let error = IsoKVError(
                            .deadlockDetected,
                            "deadlock detected: " + cycle.map { "tx\($0)" }.joined(separator: " waits for ")
                                + " waits for tx\(txid)",
                            key: chain.key, otherTransaction: TransactionID(rawValue: cycle[1]))
                        Self.cancelWait(chain, ticket: ticket, error: error)
                        return
                    }
                    if Task.isCancelled { Self.cancelWait(chain, ticket: ticket, error: CancellationError()) }
                    if let timeout {
                        timeoutTask = Task {
                            try? await Task.sleep(for: timeout)
                            if Task.isCancelled { return }
                            Self.cancelWait(
                                chain, ticket: ticket,
                                error: IsoKVError(
                                    .lockNotAvailable, "lock timeout (\(timeout)) waiting for \(mode.rawValue) lock",
                                    key: chain.key))
                        }
                    }
                }
            } onCancel: {
                Self.cancelWait(chain, ticket: ticket, error: CancellationError())
            }
        } catch is ChainRetired {
            return false
        }
        return true
    }

    /// Removes the wait `ticket` if still queued and resumes it with `error` (nothing if it was granted already).
    private static func cancelWait(_ chain: KeyChain, ticket: UInt64, error: any Error) {
        let (waiter, granted) = chain.state.withLock { $0.removeWaiterLocked(ticket) }
        for c in granted { c.resume() }
        waiter?.continuation.resume(throwing: error)
    }

    /// Returns once transaction `txid` is suspended waiting for a row lock on `key` (immediately if it already is),
    /// or once the calling task is cancelled (its observer is removed then, so an abandoned observation leaves
    /// nothing behind).
    nonisolated(nonsending) func waitUntilWaiting(_ txid: UInt64, on key: Bytes) async {
        let id = graph.withLock { g in
            g.lastObserverID &+= 1
            return g.lastObserverID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // `Task.isCancelled` is read under the graph lock: a cancellation handler that ran before this
                // section found no observer to resume, and the flag it follows is already set.
                let ready = graph.withLock { g -> Bool in
                    if g.waitingOn[txid]?.key == key || Task.isCancelled { return true }
                    g.observers.append(WaitObserver(id: id, txid: txid, key: key, continuation: continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let observer = graph.withLock { g -> WaitObserver? in
                guard let i = g.observers.firstIndex(where: { $0.id == id }) else { return nil }
                return g.observers.remove(at: i)
            }
            observer?.continuation.resume()
        }
    }
}

/// Thrown inside a wait when the chain was retired; never escapes ``LockManager``.
struct ChainRetired: Error {}

struct WaitObserver {
    /// Unique per observation (``WaitGraph/lastObserverID``): a cancelled observation removes only its own entry.
    let id: UInt64
    let txid: UInt64
    let key: Bytes
    let continuation: CheckedContinuation<Void, Never>
}

/// The wait-for graph, kept implicitly: `waitingOn` says which chain each suspended transaction is queued on, and the
/// edges out of a waiter are read from that chain (its conflicting holders and the conflicting requests queued ahead
/// of it, see `ChainState.waitEdges()`), so they are always current.
struct WaitGraph {
    /// Transaction → the chain it is queued on. An entry may outlive the wait by a moment (granted but not yet
    /// removed): `waitEdges()` lists no edges for it, so a stale entry never creates a false cycle.
    var waitingOn: [UInt64: KeyChain] = [:]
    /// Test observers (``LockManager/waitUntilWaiting(_:on:)``) not yet satisfied.
    var observers: [WaitObserver] = []
    /// The id of the newest observer; incremented for each observation.
    var lastObserverID: UInt64 = 0

    /// Records the wait, then looks for a cycle through `txid`. Returns the cycle (starting at `txid`, each member
    /// waiting for the next, the last waiting for `txid`) or nil, and the observers to resume if there is no cycle.
    mutating func beginWaitLocked(_ txid: UInt64, on chain: KeyChain) -> ([UInt64]?, [CheckedContinuation<Void, Never>])
    {
        waitingOn[txid] = chain
        if let cycle = findCycleLocked(from: txid) {
            waitingOn[txid] = nil
            return (cycle, [])
        }
        var ready: [CheckedContinuation<Void, Never>] = []
        observers.removeAll { o in
            guard o.txid == txid && o.key == chain.key else { return false }
            ready.append(o.continuation)
            return true
        }
        return (nil, ready)
    }

    mutating func endWaitLocked(_ txid: UInt64) { waitingOn[txid] = nil }

    /// Depth-first search of the wait-for graph from `start`; the path of a cycle back to `start`, or nil.
    /// Each chain's edges are computed once per search (`ChainState.waitEdges`, one lock acquisition per chain),
    /// so a search costs O(waiters + edges) however long the queues are.
    func findCycleLocked(from start: UInt64) -> [UInt64]? {
        var edgesByChain: [ObjectIdentifier: [UInt64: [UInt64]]] = [:]
        func edges(of node: UInt64) -> [UInt64] {
            guard let chain = waitingOn[node] else { return [] }
            let id = ObjectIdentifier(chain)
            if edgesByChain[id] == nil { edgesByChain[id] = chain.state.withLock { $0.waitEdges() } }
            return edgesByChain[id]?[node] ?? []
        }
        var visited: Set<UInt64> = [start]
        var path: [UInt64] = [start]
        // Iterative DFS: a stack of (node, its edges, next edge index).
        var stack: [(edges: [UInt64], next: Int)] = [(edges(of: start), 0)]
        while !stack.isEmpty {
            let top = stack.count - 1
            guard stack[top].next < stack[top].edges.count else {
                stack.removeLast()
                path.removeLast()
                continue
            }
            let n = stack[top].edges[stack[top].next]
            stack[top].next += 1
            if n == start { return path }
            if visited.insert(n).inserted {
                path.append(n)
                stack.append((edges(of: n), 0))
            }
        }
        return nil
    }
}
