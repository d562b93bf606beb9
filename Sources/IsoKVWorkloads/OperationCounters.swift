import IsoKVCore
import IsoKVSync

/// What happened to the transactions of a run: commits, failed attempts by SQLSTATE, retries, give-ups.
///
/// Every failed attempt with a retryable error is one abort: either it was retried (counted through the
/// ``RetryPolicy/onRetry`` observer, see ``RetryLog``) or it was the last attempt and the operation gave up.
/// So `abortedAttempts == retries + gaveUp` for transactions that only fail with retryable errors.
public struct OperationCounters: Sendable, Hashable {
    /// Transactions committed (through ``Worker/transaction(_:_:readOnly:_:)``).
    public var committed = 0
    /// Failed attempts by error code (`40001`, `40P01`, …).
    public var aborts: [String: Int] = [:]
    /// Failed attempts that were retried.
    public var retries = 0
    /// Operations abandoned: their last attempt failed with a retryable error.
    public var gaveUp = 0
    /// Scans that returned (committed scan transactions; ycsb-e), and the rows they returned together.
    public var scans = 0
    public var keysScanned = 0
    /// The XOR of one byte of each value a workload read in place (a scan visiting lent values): it makes the
    /// read a result, so the optimizer cannot drop it. Its value means nothing.
    public var valueDigest: UInt8 = 0

    public init() {}

    /// Total failed attempts, every code.
    public var abortedAttempts: Int { aborts.values.reduce(0, +) }

    /// Aborted attempts / all attempts (committed + aborted), 0 when nothing ran.
    public var abortRate: Double {
        let aborted = abortedAttempts
        return Double(aborted) / Double(Swift.max(1, aborted + committed))
    }

    public mutating func merge(_ other: OperationCounters) {
        committed += other.committed
        aborts.merge(other.aborts, uniquingKeysWith: +)
        retries += other.retries
        gaveUp += other.gaveUp
        scans += other.scans
        keysScanned += other.keysScanned
        valueDigest ^= other.valueDigest
    }
}

/// The retries one task saw, fed by a ``RetryPolicy/onRetry`` observer.
///
/// One per task, so its lock is never contended; it is a lock rather than a plain variable only because the
/// observer is a `@Sendable` closure and cannot capture a mutable local.
public final class RetryLog: Sendable {
    /// Failed-and-retried attempts by code, and their total.
    private let state = Locked<(aborts: [String: Int], retries: Int)>(([:], 0))

    public init() {}

    /// Counts one retry.
    public func record(_ event: RetryEvent) {
        state.withLock {
            $0.aborts[event.error.code.rawValue, default: 0] += 1
            $0.retries += 1
        }
    }

    /// `base` with this log's observer attached (replacing any observer `base` had).
    public func observing(_ base: RetryPolicy) -> RetryPolicy {
        var policy = base
        policy.onRetry = { [self] event in record(event) }
        return policy
    }

    /// What was logged, as counters (only `aborts` and `retries` are set).
    public var counters: OperationCounters {
        state.withLock { s in
            var c = OperationCounters()
            c.aborts = s.aborts
            c.retries = s.retries
            return c
        }
    }
}
