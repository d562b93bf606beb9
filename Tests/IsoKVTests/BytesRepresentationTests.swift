import Foundation
@_spi(Testing) import IsoKV
import IsoKVCore
import IsoKVTestSupport
import Testing

/// `Bytes` keeps byte strings of up to 15 bytes inline and longer ones in an array, and hashes with its own keyed
/// hash in dictionaries: every observable behaviour must equal that of the plain `[UInt8]` it stands for.
@Suite("Bytes representation (inline short strings, keyed hash)")
struct BytesRepresentationTests {
    /// Random byte strings of 0…40 bytes (biased to the 15/16 boundary, to zeros and to 0xff) compared pairwise
    /// with their `[UInt8]` model: equality, order, hash agreement, count, round trips.
    @Test func behavesAsItsByteArray() throws {
        var rng = SplitMix64(seed: testSeed("Bytes model"))
        func randomArray() -> [UInt8] {
            let n = rng.next() % 3 == 0 ? 14 + Int(rng.next() % 4) : Int(rng.next() % 41)
            return (0..<n).map { _ in
                switch rng.next() % 4 {
                case 0: 0
                case 1: 0xff
                default: UInt8(truncatingIfNeeded: rng.next())
                }
            }
        }
        var arrays = (0..<300).map { _ in randomArray() }
        // Pairs that differ only after a common prefix, or only in length (trailing zeros).
        arrays += [
            [], [0], [0, 0], Array("ab".utf8), Array("ab".utf8) + [0], Array(repeating: 7, count: 15),
            Array(repeating: 7, count: 16), Array(repeating: 0, count: 15), Array(repeating: 0, count: 16)
        ]
        for a in arrays {
            let b = Bytes(a)
            #expect(b.bytes == a)
            #expect(b.count == a.count && b.isEmpty == a.isEmpty)
            #expect(b.withUnsafeBytes { Array($0) } == a)
            #expect(Bytes(a[...]) == b, "the Sequence initializer gives the same value")
            let decoded = try JSONDecoder().decode(Bytes.self, from: JSONEncoder().encode(b))
            #expect(decoded == b && decoded.bytes == a)
        }
        for a in arrays {
            for c in arrays {
                let (x, y) = (Bytes(a), Bytes(c))
                #expect((x == y) == (a == c), "\(x) == \(y)")
                #expect((x < y) == a.lexicographicallyPrecedes(c), "\(x) < \(y)")
                if a == c {
                    #expect(x.hashValue == y.hashValue)
                    var h1 = Hasher()
                    var h2 = Hasher()
                    x.hash(into: &h1)
                    y.hash(into: &h2)
                    #expect(h1.finalize() == h2.finalize())
                }
            }
        }
    }

    /// A byte string shared from an engine object (`SharedBytes`: how values read from the engine are stored)
    /// behaves exactly as the same bytes in an array: equality, order, both hashes, mutation (value semantics: the
    /// object is never written), JSON; a short one is stored inline.
    @Test func sharedStorageBehavesAsItsByteArray() throws {
        var rng = SplitMix64(seed: testSeed("Bytes shared"))
        func shared(_ a: [UInt8]) -> Bytes {
            Bytes(sharing: a.withUnsafeBytes { SharedBytes.make(bytes: $0, word0: 1, word1: 2, next: nil) })
        }
        let arrays: [[UInt8]] = (0..<120).map { _ in
            let n = rng.next() % 3 == 0 ? 14 + Int(rng.next() % 4) : Int(rng.next() % 60)
            return (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next() % 3) }
        }
        var dict: [Bytes: Int] = [:]
        for (i, a) in arrays.enumerated() { dict[Bytes(a)] = i }
        for a in arrays {
            let s = shared(a)
            #expect(s.bytes == a && s.count == a.count && s.withUnsafeBytes { Array($0) } == a)
            #expect(s == Bytes(a) && Bytes(a) == s && s.hashValue == Bytes(a).hashValue)
            #expect(dict[s].map { arrays[$0] } == a, "a shared key finds the array-stored one")
            var h1 = Hasher()
            var h2 = Hasher()
            s.hash(into: &h1)
            Bytes(a).hash(into: &h2)
            #expect(h1.finalize() == h2.finalize())
            let decoded = try JSONDecoder().decode(Bytes.self, from: JSONEncoder().encode(s))
            #expect(decoded == s)
            for c in arrays {
                #expect((s == shared(c)) == (a == c) && (s == Bytes(c)) == (a == c))
                #expect((s < shared(c)) == a.lexicographicallyPrecedes(c))
                #expect((Bytes(c) < s) == c.lexicographicallyPrecedes(a))
            }
        }
        // Value semantics: changing a copy never writes the shared object.
        let original = Array(repeating: UInt8(9), count: 40)
        let s = shared(original)
        var t = s
        t.bytes[0] = 1
        #expect(s.bytes == original && t.bytes[0] == 1 && t != s)
        // A deletion's object has no bytes (count -1); a long list of linked objects is freed without recursion.
        let none = SharedBytes.make(bytes: nil, word0: 0, word1: 0, next: nil)
        #expect(none.count == -1 && none.withUnsafeBytes { $0.count } == 0)
        var head: Unmanaged<SharedBytes>?
        for i in 0..<200_000 {
            let node = [UInt8(truncatingIfNeeded: i)].withUnsafeBytes {
                SharedBytes.make(bytes: $0, word0: 0, word1: 0, next: head)
            }
            head = .passRetained(node)
        }
        head?.release()
    }

    /// Strings and literals give the same value as their UTF-8 bytes, inline or not; `string` reverses them.
    @Test func stringsAndLiterals() {
        for s in ["", "a", "user0000012345", "fifteen bytes!!", "sixteen bytes!!!", "ü-ñ-€ and more than fifteen"] {
            let b = Bytes(s)
            #expect(b == Bytes(Array(s.utf8)))
            #expect(b.string == s)
        }
        let literal: Bytes = "user/42"
        #expect(literal.bytes == Array("user/42".utf8))
        #expect(Bytes([0xff, 0x00]).string == nil)
        #expect(Bytes([0x01, 0x02]).description == "0x0102")
        #expect(Bytes("k").description == "\"k\"")
    }

    /// Changing `bytes` in place keeps the representation canonical across the 15/16-byte boundary: the result
    /// equals (and hashes as) the value built from the same array.
    @Test func mutationAcrossTheInlineBoundary() {
        var b = Bytes(Array(repeating: UInt8(ascii: "x"), count: 15))
        b.bytes.append(UInt8(ascii: "y"))  // 15 → 16: moves to the heap
        #expect(b == Bytes(Array(repeating: UInt8(ascii: "x"), count: 15) + [UInt8(ascii: "y")]))
        b.bytes.removeLast()  // 16 → 15: back inline
        let fifteen = Bytes(Array(repeating: UInt8(ascii: "x"), count: 15))
        #expect(b == fifteen && b.hashValue == fifteen.hashValue)
        var v = Bytes("value")
        v.bytes[0] &+= 1
        #expect(v == Bytes("walue"))
        var long = Bytes(Array(repeating: 1, count: 100))
        let copy = long
        long.bytes[0] = 2
        #expect(copy.bytes[0] == 1 && long.bytes[0] == 2, "value semantics: the copy is not changed")
        #expect(long.count == 100)
    }

    /// Dictionaries and sets of `Bytes` (the key directory is one) agree with the same collections of arrays.
    @Test func dictionaryAgreesWithArrays() {
        var rng = SplitMix64(seed: testSeed("Bytes dictionary"))
        var model: [[UInt8]: Int] = [:]
        var dict: [Bytes: Int] = [:]
        for i in 0..<20_000 {
            let n = Int(rng.next() % 24)
            let a = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next() % 4) }
            if rng.next() % 5 == 0 {
                #expect(dict.removeValue(forKey: Bytes(a)) == model.removeValue(forKey: a))
            } else {
                dict[Bytes(a)] = i
                model[a] = i
            }
        }
        #expect(dict.count == model.count)
        for (a, v) in model { #expect(dict[Bytes(a)] == v) }
    }

    /// The keyed hash spreads the benchmark's keys (`user` + ten digits, which differ only in a few bytes):
    /// 100 000 keys get (almost) as many distinct hash values, and the low bits a table uses are spread too.
    @Test func hashSpreadsSimilarKeys() {
        let keys = (0..<100_000).map { i -> Bytes in
            Bytes("user" + String(repeating: "0", count: 10 - String(i).count) + String(i))
        }
        let hashes = Set(keys.map { $0._rawHashValue(seed: 12345) })
        #expect(hashes.count >= 99_990, "\(hashes.count) distinct hashes")
        let buckets = Set(keys.map { $0._rawHashValue(seed: 12345) & ((1 << 17) - 1) })
        // 100 000 random values in 2^17 buckets fill about 131072 · (1 − e^(−0.763)) ≈ 70 000 of them.
        #expect(buckets.count > 65_000, "\(buckets.count) of 131072 buckets used")
        let long = (0..<10_000).map { Bytes(Array(repeating: 0, count: 20) + Array(String($0).utf8)) }
        #expect(Set(long.map { $0._rawHashValue(seed: 7) }).count >= 9_995)
    }
}
