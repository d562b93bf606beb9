import Synchronization

/// A statistics counter incremented from many threads: one cell per stripe, each on its own cache line (a cell is
/// 128 bytes, so the counters of two cells are never on the same 64-byte line); reading sums the cells.
public final class StripedCounter: Sendable {
    @usableFromInline let cells: [Cell]
    /// `stripes` cells; callers pick a stripe per thread or task (any value in `0..<stripes`).
    public init(stripes: Int) { cells = (0..<stripes).map { _ in Cell() } }
    @inlinable @inline(__always)
    public func add(_ n: Int, stripe: Int) { cells[stripe].value.add(n, ordering: .relaxed) }
    /// The sum of the cells (not a snapshot: concurrent adds may or may not be counted).
    public var value: Int { cells.reduce(0) { $0 + $1.value.load(ordering: .relaxed) } }

    @usableFromInline final class Cell: Sendable {
        @usableFromInline let value = Atomic<Int>(0)
        @usableFromInline init() {}
        /// Padding only: keeps the next cell's counter off this one's cache line.
        private let padding: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    }
}
