/// A store that can tell when a transaction is suspended waiting for a row lock: the hook that lets a test or a
/// conformance replay order "T2 waits for T1's lock" before "T1 commits" without sleeping.
///
/// ```swift
/// let t2 = Task { try await store.transaction(.readCommitted) { try await $0.put("x", "2") } }
/// await store.waitUntilWaiting(t2ID, on: "x")     // T2 is now queued behind T1's lock on x
/// try await t1.commit()                           // and T2 proceeds
/// ```
///
/// It observes; it never changes what the store does. The embedded `Database` conforms (as `@_spi(Testing)` API);
/// a remote backend may implement it by asking its server which sessions wait for which lock.
public protocol LockWaitObservable {
    /// Returns once transaction `transaction` waits for a row lock on `key` (at once if it already does).
    ///
    /// If the transaction never waits on `key` (it got the lock, or it ended), the call does not return: callers that
    /// cannot rule that out race it against the transaction's completion (as `IsoKVConformance` does).
    nonisolated(nonsending) func waitUntilWaiting(_ transaction: TransactionID, on key: Bytes) async
}
