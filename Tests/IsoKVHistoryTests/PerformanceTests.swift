import Foundation
import IsoKVHistory
import Testing
import IsoKVTestSupport

/// A 100 000-transaction history, checked once (no timing assertion; the time is printed).
@Suite struct HistoryCheckerPerformanceTests {
    /// A serial execution of random transactions over 20 000 keys, plus one planted write skew at the end.
    static func bigHistory(transactions: Int, keys keyCount: Int, seed: UInt64) -> History {
        var rng = SplitMix64(seed: seed)
        let keys = (0..<keyCount).map { HistoryKey("key/" + String(100_000 + $0).dropFirst()) }
        var version = [Int](repeating: 0, count: keyCount)
        var out: [TransactionRecord] = []
        out.reserveCapacity(transactions + 2)
        func observed(_ k: Int) -> Observed { version[k] == 0 ? .initial : .version(version[k]) }
        for i in 0..<transactions {
            var t = TransactionRecord(id: TxnID(i + 1), level: .serializable)
            var written: [Int] = []
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let k = Int.random(in: 0..<keyCount, using: &rng)
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<4:
                    t.read(keys[k], observed(k))
                case 4..<8:
                    t.read(keys[k], observed(k))
                    if !written.contains(k) { t.write(keys[k]); written.append(k) }
                case 8:
                    if !written.contains(k) { t.write(keys[k]); written.append(k) }
                default:
                    let upper = min(k + 3, keyCount - 1)
                    let range = KeyRange(from: keys[k], to: keys[upper])
                    t.scan(
                        range,
                        results: (k..<upper).filter { version[$0] > 0 && !written.contains($0) }
                            .map { ScanEntry(keys[$0], .version(version[$0])) })
                }
            }
            var installed: [HistoryKey: Int] = [:]
            for k in written {
                version[k] += 1
                installed[keys[k]] = version[k]
            }
            t.commit(order: i + 1, installed: installed)
            out.append(t)
        }
        // The planted anomaly: two doctors on call, each goes off after seeing the other on call.
        let a: HistoryKey = "doctor/alice", b: HistoryKey = "doctor/bob"
        var t1 = TransactionRecord(id: TxnID(transactions + 1), level: .serializable)
        t1.read(a, .initial); t1.read(b, .initial); t1.write(a); t1.commit(installed: [a: 1])
        var t2 = TransactionRecord(id: TxnID(transactions + 2), level: .serializable)
        t2.read(a, .initial); t2.read(b, .initial); t2.write(b); t2.commit(installed: [b: 1])
        out.append(contentsOf: [t1, t2])
        return History(out)
    }

    @Test func hundredThousandTransactions() throws {
        let n = 100_000
        let history = Self.bigHistory(transactions: n, keys: 20_000, seed: 42)
        let start = ContinuousClock.now
        let analysis = try HistoryChecker().analyze(history)
        let elapsed = ContinuousClock.now - start
        let edges = analysis.stats.edges.values.reduce(0, +)
        print("checked \(analysis.stats.committed) transactions, \(edges) edges \(analysis.stats.edges) in \(elapsed)")
        #expect(analysis.stats.committed == n + 2)
        #expect(analysis.anomalies.map(\.phenomenon) == [.g2Item], "\(analysis.anomalies.prefix(5))")
        #expect(Set(analysis.anomalies.first?.transactions ?? []) == [TxnID(n + 1), TxnID(n + 2)])
    }
}
