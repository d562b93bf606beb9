import IsoKVWorkloads
import Testing

@Suite("Workloads generators")
struct GeneratorTests {
    @Test("SplitMix64 reproduces the reference outputs of splitmix64.c")
    func splitMixKnownValues() {
        var zero = SplitMix64(seed: 0)
        #expect(
            (0..<4).map { _ in zero.next() }
                == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F, 0xF88B_B8A8_724C_81EC])
        var other = SplitMix64(seed: 1_234_567)
        #expect(
            (0..<5).map { _ in other.next() }
                == [
                    6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                    4_593_380_528_125_082_431, 16_408_922_859_458_223_821
                ])
    }

    @Test("SplitMix64 bounded draws stay in range and cover it")
    func splitMixBounded() {
        var rng = SplitMix64(seed: 9)
        var seen = [Int](repeating: 0, count: 7)
        for _ in 0..<7_000 {
            let v = rng.next(below: 7)
            #expect((0..<7).contains(v))
            seen[max(0, min(6, v))] += 1
        }
        #expect(seen.allSatisfy { $0 > 800 && $0 < 1_200 }, "\(seen)")
        for _ in 0..<1_000 {
            let u = rng.nextUnitInterval()
            #expect(u >= 0 && u < 1)
        }
    }

    @Test("IndexPermutation is a bijection of 0..<count", arguments: [1, 2, 3, 5, 64, 1000, 1025])
    func permutation(_ count: Int) {
        let p = IndexPermutation(count: count)
        let images = (0..<count).map(p.apply)
        #expect(Set(images) == Set(0..<count))
        if count >= 64 {
            #expect(images.enumerated().filter { $0.offset == $0.element }.count < count / 8, "hardly scrambled")
        }
    }

    /// θ = 0.99 over 1000 items: ranks 0 and 1 are drawn with their exact probabilities (1/ζ and 2^-θ/ζ, about
    /// 12.9% and 6.5%); the ten hottest together within 10% of their exact share (the approximation of ranks ≥ 2).
    @Test("Zipfian θ=0.99: the hottest ranks get their probability, all draws in range")
    func zipfianSkew() {
        let n = 1_000, draws = 200_000
        let z = ZipfianGenerator(count: n, theta: 0.99)
        var rng = SplitMix64(seed: 5)
        var counts = [Int](repeating: 0, count: n)
        for _ in 0..<draws {
            let r = z.nextRank(using: &rng)
            guard r >= 0 && r < n else { Issue.record("rank \(r) out of range"); return }
            counts[r] += 1
        }
        for rank in [0, 1] {
            let expected = z.probability(ofRank: rank)
            let observed = Double(counts[rank]) / Double(draws)
            #expect(abs(observed - expected) / expected < 0.03, "rank \(rank): \(observed) vs \(expected)")
        }
        #expect(abs(z.probability(ofRank: 0) - 0.12938) < 0.0001, "1/ζ(1000, 0.99)")
        let topTen = Double(counts[0..<10].reduce(0, +)) / Double(draws)
        let exactTopTen = (0..<10).map(z.probability(ofRank:)).reduce(0, +)
        #expect(abs(topTen - exactTopTen) / exactTopTen < 0.10, "top ten: \(topTen) vs \(exactTopTen)")
        #expect(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[900])
    }

    @Test("scrambled Zipfian: the hottest item is rank 0's, with rank 0's frequency; all indices in range")
    func scrambledZipfian() {
        let n = 1_000, draws = 100_000
        let z = ScrambledZipfian(count: n)
        var rng = SplitMix64(seed: 6)
        var counts = [Int](repeating: 0, count: n)
        for _ in 0..<draws {
            let i = z.next(using: &rng)
            guard i >= 0 && i < n else { Issue.record("index \(i) out of range"); return }
            counts[i] += 1
        }
        let hottest = counts.indices.max { counts[$0] < counts[$1] }!
        #expect(hottest == z.index(ofRank: 0))
        let expected = z.zipfian.probability(ofRank: 0)
        #expect(abs(Double(counts[hottest]) / Double(draws) - expected) / expected < 0.05)
        #expect(z.index(ofRank: 0) != 0 || z.index(ofRank: 1) != 1, "ranks spread, not in key order")
    }

    @Test("uniform chooser: in range and flat")
    func uniformChooser() {
        let chooser = KeyChooser(count: 10, distribution: .uniform)
        var rng = SplitMix64(seed: 8)
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<50_000 {
            let i = chooser.next(using: &rng)
            guard i >= 0 && i < 10 else { Issue.record("index \(i) out of range"); return }
            counts[i] += 1
        }
        #expect(counts.allSatisfy { abs($0 - 5_000) < 300 }, "\(counts)")
    }

    @Test("dataset keys: YCSB names in key order, inserts continue the numbering")
    func datasetKeys() {
        #expect(Dataset.key(0) == "user0000000000")
        #expect(Dataset.key(1234) == "user0000001234")
        #expect(Dataset.key(12_345_678_901) == "user12345678901")
        let data = Dataset(keyCount: 20, valueSize: 3, distribution: .uniform)
        #expect(data.keys == data.keys.sorted())
        #expect(data.value == "vvv")
        #expect(data.nextInsertKey() == "user0000000020")
        #expect(data.nextInsertKey() == "user0000000021")
        #expect(data.insertedKeyCount == 2)
    }

    @Test("write-skew pairs cover the keys two by two")
    func writeSkewPairs() {
        #expect(WriteSkew.pair(containing: 0, keyCount: 6) == (0, 1))
        #expect(WriteSkew.pair(containing: 5, keyCount: 6) == (4, 5))
        #expect(WriteSkew.pair(containing: 6, keyCount: 7) == (4, 5), "an odd last key goes to the last pair")
        #expect(WriteSkew.amount(nil) == 0 && WriteSkew.amount("vvv") == 0 && WriteSkew.amount("-3") == -3)
    }
}
