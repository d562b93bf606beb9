#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Zipfian ranks in `0..<count` (rank 0 the most popular, with probability `1 / ((r+1)^θ · ζ(count, θ))` for rank
/// `r`), drawn by the method of Gray et al., "Quickly generating billion-record synthetic databases" (SIGMOD 1994),
/// as YCSB's `ZipfianGenerator` does.
///
/// Ranks 0 and 1 get exactly their probability; ranks ≥ 2 come from a closed-form approximation of the inverse
/// CDF (the approximation YCSB uses). `init` sums ζ(count, θ) in O(count): about 1 s per 50 million items.
public struct ZipfianGenerator: Sendable, Hashable {
    /// Number of ranks (≥ 1).
    public let count: Int
    /// Skew, in (0, 1): 0.99 is YCSB's default ("a few keys are hot").
    public let theta: Double
    /// ζ(count, θ) = Σ_{i=1…count} 1/i^θ.
    public let zetaN: Double
    @usableFromInline let alpha: Double
    @usableFromInline let eta: Double
    /// 1 + 0.5^θ: `u · ζ` below 1 is rank 0, below this is rank 1.
    @usableFromInline let rankOneBound: Double

    public init(count: Int, theta: Double = 0.99) {
        precondition(count >= 1, "a Zipfian distribution needs at least one item")
        precondition(theta > 0 && theta < 1, "θ must be in (0, 1)")
        self.count = count
        self.theta = theta
        var z = 0.0
        for i in 1...count { z += 1 / pow(Double(i), theta) }
        zetaN = z
        let zeta2 = 1 + 1 / pow(2, theta)
        alpha = 1 / (1 - theta)
        eta = count == 1 ? 0 : (1 - pow(2 / Double(count), 1 - theta)) / (1 - zeta2 / z)
        rankOneBound = 1 + pow(0.5, theta)
    }

    /// The next rank, in `0..<count`.
    @inlinable
    public func nextRank(using rng: inout SplitMix64) -> Int {
        let u = rng.nextUnitInterval()
        let uz = u * zetaN
        if uz < 1 { return 0 }
        if uz < rankOneBound { return Swift.min(1, count - 1) }
        return Swift.min(count - 1, Int(Double(count) * pow(eta * u - eta + 1, alpha)))
    }

    /// The exact probability of `rank` under the distribution (what ranks 0 and 1 are drawn with).
    public func probability(ofRank rank: Int) -> Double {
        precondition(rank >= 0 && rank < count)
        return 1 / (pow(Double(rank + 1), theta) * zetaN)
    }
}

/// YCSB's "scrambled Zipfian": Zipfian popularity, with the ranks spread over the item indices so that the hot items
/// are not neighbours (in key order, a scan or a range lock would otherwise always hit the same few keys).
///
/// Differs from YCSB in one respect: YCSB hashes the rank with FNV-64 modulo the item count, which merges some
/// ranks into one item; here the spread is a bijection of `0..<count` (``IndexPermutation``), so each item's
/// popularity is exactly its rank's.
public struct ScrambledZipfian: Sendable, Hashable {
    public let zipfian: ZipfianGenerator
    @usableFromInline let permutation: IndexPermutation

    public init(count: Int, theta: Double = 0.99) {
        zipfian = ZipfianGenerator(count: count, theta: theta)
        permutation = IndexPermutation(count: count)
    }

    public var count: Int { zipfian.count }

    /// The next item index, in `0..<count`.
    @inlinable
    public func next(using rng: inout SplitMix64) -> Int {
        permutation.apply(zipfian.nextRank(using: &rng))
    }

    /// The item that `rank` lands on (rank 0: the hottest item).
    public func index(ofRank rank: Int) -> Int { permutation.apply(rank) }
}

/// A fixed pseudo-random bijection of `0..<count`.
///
/// On `b`-bit words (`2^b` ≥ `count`, the smallest such `b`) it applies an invertible mix — add a constant, multiply
/// by an odd constant, xor-shift, multiply, xor-shift, each a bijection modulo `2^b` — and walks the cycle until
/// the result is below `count` ("cycle walking"). Since `2^b < 2 · count`, fewer than two steps are needed on
/// average. Walking from `x < count` along the cycle of a permutation of `0..<2^b` and stopping at the first value
/// `< count` is itself a permutation of `0..<count`.
public struct IndexPermutation: Sendable, Hashable {
    public let count: Int
    @usableFromInline let mask: UInt64
    @usableFromInline let shift: UInt64
    @usableFromInline let bits: Int

    public init(count: Int) {
        precondition(count >= 1)
        self.count = count
        bits = Swift.max(1, UInt64.bitWidth - UInt64(count - 1).leadingZeroBitCount)
        mask = bits == 64 ? .max : (1 << UInt64(bits)) - 1
        shift = UInt64(Swift.max(1, (bits + 1) / 2))
    }

    @inlinable
    func mix(_ x: UInt64) -> UInt64 {
        var v = (x &+ 0x632B_E59B_D9B4_E019) & mask
        v = (v &* 0x9E37_79B9_7F4A_7C15) & mask
        if bits > 1 { v ^= v >> shift }
        v = (v &* 0xBF58_476D_1CE4_E5B9) & mask
        if bits > 1 { v ^= v >> shift }
        return v
    }

    /// The image of `index` (`0 ≤ index < count`).
    @inlinable
    public func apply(_ index: Int) -> Int {
        var v = mix(UInt64(truncatingIfNeeded: index))
        while v >= UInt64(count) { v = mix(v) }
        return Int(truncatingIfNeeded: v)
    }
}
