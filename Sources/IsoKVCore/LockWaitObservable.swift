/// A store that can tell when a transaction is suspended waiting for a row lock: the hook that lets a test or a
/// conformance replay order "T2 waits for T1's lock" before "T1 commits" without sleeping.
///
/// ```swift
/// let t1 = try await db.begin(.readCommitted)
/// try await t1.put("x", "1")
/// let (ids, announce) = AsyncStream.makeStream(of: TransactionID.self)
/// let t2 = Task {
///     try await db.transaction(.readCommitted) { tx in announce.yield(tx.id); try await tx.put("x", "2") }
/// }
/// var next = ids.makeAsyncIterator()
/// await db.waitUntilWaiting(await next.next()!, on: "x")   // T2 is queued behind T1's lock on x
/// try await t1.commit()                                    // and now proceeds
/// try await t2.value
/// ```
///
/// It observes; it never changes what the store does. The embedded `Database` conforms (as `@_spi(Testing)` API);
/// a remote backend may implement it by asking its server which sessions wait for which lock.
public protocol LockWaitObservable {
    /// Returns once transaction `transaction` waits for a row lock on `key` (at once if it already does), or once
    /// the calling task is cancelled.
    ///
    /// If the transaction never waits on `key` (it got the lock, or it ended), the call returns only when cancelled:
    /// callers that cannot rule that out race it against the transaction's completion (as `IsoKVConformance` does).
    nonisolated(nonsending) func waitUntilWaiting(_ transaction: TransactionID, on key: Bytes) async
}
