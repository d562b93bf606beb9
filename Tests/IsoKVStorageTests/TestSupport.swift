import Foundation
@testable import IsoKVStorage

/// A fresh empty directory under /tmp, removed by `remove()`.
struct TempDirectory {
    let path: String

    init(_ label: String = "wal") {
        var template = Array("/tmp/isokv-\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    func file(_ name: String) -> String { path + "/" + name }

    func segments() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix("wal-") }.sorted()
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Deterministic pseudo-random numbers (SplitMix64) so failures replay.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A record with `n` writes of random keys/values (some tombstones).
func randomRecord(sequence: UInt64, rng: inout SeededRandom, maxWrites: Int = 4, maxValue: Int = 64) -> CommitRecord {
    let n = Int.random(in: 1...maxWrites, using: &rng)
    let writes = (0..<n).map { _ -> KeyWrite in
        let key = (0..<Int.random(in: 0...12, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let tomb = Int.random(in: 0..<8, using: &rng) == 0
        let value = tomb ? nil : (0..<Int.random(in: 0...maxValue, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return KeyWrite(key: key, value: value, version: UInt64.random(in: 0...UInt64.max, using: &rng))
    }
    return CommitRecord(sequence: sequence, writes: writes)
}

/// Reads, modifies and writes back a file.
func modifyFile(_ path: String, _ body: (inout [UInt8]) -> Void) throws {
    var data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    body(&data)
    try Data(data).write(to: URL(fileURLWithPath: path))
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
}
