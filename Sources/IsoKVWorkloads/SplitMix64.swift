/// SplitMix64 (Steele, Lea and Flood; Vigna's reference `splitmix64.c`): a small, fast, seedable generator. Every
/// workload choice and every randomized test in IsoKV draws from it, so that a run replays exactly from its seed.
///
/// ```swift
/// var rng = SplitMix64(seed: 42)
/// let n = Int.random(in: 0..<10, using: &rng)
/// ```
///
/// Not cryptographic; 2^64 period; one state word, so copying it forks the stream.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    /// The whole state: advanced by the golden-ratio increment before each output.
    public var state: UInt64

    @inlinable
    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0..<bound` (`bound` ≥ 1) by Lemire's multiply-high: one multiplication, no division;
    /// the bias is at most `bound / 2^64`.
    @inlinable
    public mutating func next(below bound: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(truncatingIfNeeded: bound)).high)
    }

    /// A uniform `Double` in `[0, 1)` with 53 random bits.
    @inlinable
    public mutating func nextUnitInterval() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}
