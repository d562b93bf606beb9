import Foundation
@testable import IsoKVStorage
import IsoKVTestSupport

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A record with `n` writes of random keys/values (some tombstones).
func randomRecord(sequence: UInt64, rng: inout SplitMix64, maxWrites: Int = 4, maxValue: Int = 64) -> CommitRecord {
    let n = Int.random(in: 1...maxWrites, using: &rng)
    let writes = (0..<n).map { _ -> KeyWrite in
        let key = (0..<Int.random(in: 0...12, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let tomb = Int.random(in: 0..<8, using: &rng) == 0
        let value =
            tomb
            ? nil : (0..<Int.random(in: 0...maxValue, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return KeyWrite(key: key, value: value, version: UInt64.random(in: 0...UInt64.max, using: &rng))
    }
    return CommitRecord(sequence: sequence, writes: writes)
}
