/// Picks item indices in `0..<count` under a distribution: which key the next operation touches.
public struct KeyChooser: Sendable, Hashable {
    public enum Distribution: Sendable, Hashable {
        /// Every index equally likely.
        case uniform
        /// YCSB's scrambled Zipfian with skew `theta` (YCSB's default: 0.99).
        case zipfian(theta: Double)
    }

    public let count: Int
    public let distribution: Distribution
    /// Non-nil exactly when `distribution` is `.zipfian` (its ζ sum is computed once, here).
    @usableFromInline let zipfian: ScrambledZipfian?

    public init(count: Int, distribution: Distribution) {
        precondition(count >= 1)
        self.count = count
        self.distribution = distribution
        switch distribution {
        case .uniform: zipfian = nil
        case .zipfian(let theta): zipfian = ScrambledZipfian(count: count, theta: theta)
        }
    }

    /// The next index, in `0..<count`.
    @inlinable
    public func next(using rng: inout SplitMix64) -> Int {
        if let zipfian { return zipfian.next(using: &rng) }
        return rng.next(below: count)
    }
}
