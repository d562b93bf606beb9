@_spi(Testing) import IsoKV
import Testing
import IsoKVTestSupport

/// Random operation sequences against a trivially correct model: a committed dictionary plus, per transaction, a
/// working copy and a stack of savepoint copies.
@Suite("Model-based random operations")
struct ModelTests {
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomSequencesMatchTheModel(seed: UInt64) async throws {
        var rng = SplitMix64(seed: seed)
        let db = makeDatabase()
        var committed: [Bytes: Bytes] = [:]
        let keys = (0..<12).map { Bytes("m/\($0)") }
        for _ in 0..<60 {
            let level = IsolationLevel.allCases[Int(rng.next() % 3)]
            let tx = try await db.begin(level)
            var work = committed
            var saved: [(Savepoint, [Bytes: Bytes])] = []
            for _ in 0..<Int(rng.next() % 25) {
                let k = keys[Int(rng.next() % UInt64(keys.count))]
                let v = Bytes.int(Int(rng.next() % 1000))
                switch rng.next() % 9 {
                case 0, 1:
                    try await tx.put(k, v); work[k] = v
                case 2:
                    #expect(try await tx.delete(k) == (work[k] != nil)); work[k] = nil
                case 3:
                    if work[k] != nil {
                        await expectCode(.uniqueViolation) { try await tx.insert(k, v) }
                    } else {
                        try await tx.insert(k, v); work[k] = v
                    }
                case 4:
                    #expect(try await tx.get(k) == work[k])
                case 5:
                    let reverse = rng.next() % 2 == 0
                    let limit = Int(rng.next() % 6)
                    var expected = work.filter { $0.key.bytes.starts(with: Array("m/".utf8)) }
                        .sorted { $0.key < $1.key }.map { KeyValue(key: $0.key, value: $0.value) }
                    if reverse { expected.reverse() }
                    #expect(
                        try await tx.scan(prefix: "m/", limit: limit, reverse: reverse)
                            == Array(expected.prefix(limit)))
                case 6:
                    saved.append((try await tx.savepoint(), work))
                case 7:
                    if !saved.isEmpty {
                        let i = Int(rng.next() % UInt64(saved.count))
                        try await tx.rollback(to: saved[i].0)
                        work = saved[i].1
                        saved.removeSubrange((i + 1)...)
                    }
                default:
                    if !saved.isEmpty {
                        let i = Int(rng.next() % UInt64(saved.count))
                        try await tx.release(saved[i].0)
                        saved.removeSubrange(i...)
                    }
                }
            }
            if rng.next() % 4 == 0 {
                try await tx.rollback()
            } else {
                try await tx.commit()
                committed = work
            }
            for k in keys { #expect(try await db.get(k)?.value == committed[k]) }
        }
        let s = db.statistics()
        #expect(s.chains == committed.count)
        #expect(s.versions == committed.count)
        #expect(s.pendingWrites == 0)
    }
}
