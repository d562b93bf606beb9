/// Row-lock waits since the database was created, in ``Database/Statistics/lockWaits``.
///
/// A request counts when it asks to wait (`LockWait.block`, the default) and finds the row locked in a conflicting
/// mode; an uncontended lock, a `.noWait` failure (`55P03`, counted in ``AbortStatistics/lockNotAvailable``) and a
/// `.skipLocked` skip do not. The time runs from finding the conflict to the request's return, whatever its outcome:
/// granted, deadlock victim (`40P01`), lock timeout, or cancellation. A wait still in progress counts in ``waits``
/// but not yet in ``waitNanoseconds``.
///
/// ```swift
/// let w = db.statistics().lockWaits
/// print("lock waits: \(w.waits), mean \(w.waits == 0 ? 0 : w.waitNanoseconds / w.waits) ns")
/// ```
public struct LockWaitStatistics: Sendable, Hashable, Codable {
    /// Requests that waited.
    public var waits = 0
    /// Nanoseconds spent in the waits that ended.
    public var waitNanoseconds = 0

    public init(waits: Int = 0, waitNanoseconds: Int = 0) {
        self.waits = waits
        self.waitNanoseconds = waitNanoseconds
    }
}
