import Synchronization

/// A statistics counter incremented from many threads: one cell per stripe, each on its own cache line (cells are
/// 128 bytes apart, so the counters of two cells are never on the same 64-byte line nor an adjacent-line prefetch
/// pair); reading sums the cells.
///
/// The cells are one raw allocation rather than an array of objects: an `add` then writes only its cell's line
/// (taking an object out of an array retains and releases it, two more atomic writes on the same line).
///
/// ```swift
/// let hits = StripedCounter(stripes: 8)
/// hits.add(1, stripe: ThreadStripe.current() & 7)
/// print(hits.value)
/// ```
public final class StripedCounter: @unchecked Sendable {
    // @unchecked Sendable: `cells` is written only through atomics; allocated in init, freed in deinit.
    /// Words between two cells' counters (16 × 8 = 128 bytes).
    @usableFromInline static let stride = 16
    @usableFromInline let stripes: Int
    /// Cell `i`'s counter is `cells[i * stride]`; the words between are padding.
    @usableFromInline let cells: UnsafeMutablePointer<Atomic<Int>>

    /// `stripes` cells; callers pick a stripe per thread or task (any value in `0..<stripes`).
    public init(stripes: Int) {
        precondition(stripes > 0, "a striped counter needs at least one stripe")
        self.stripes = stripes
        cells = .allocate(capacity: stripes * Self.stride)
        for i in 0..<(stripes * Self.stride) { (cells + i).initialize(to: Atomic(0)) }
    }

    deinit {
        cells.deinitialize(count: stripes * Self.stride)
        cells.deallocate()
    }

    @inlinable @inline(__always)
    public func add(_ n: Int, stripe: Int) {
        precondition(stripe >= 0 && stripe < stripes, "stripe out of range")
        (cells + stripe &* Self.stride).pointee.add(n, ordering: .relaxed)
    }

    /// The sum of the cells (not a snapshot: concurrent adds may or may not be counted).
    public var value: Int {
        var sum = 0
        for i in 0..<stripes { sum &+= (cells + i &* Self.stride).pointee.load(ordering: .relaxed) }
        return sum
    }
}
