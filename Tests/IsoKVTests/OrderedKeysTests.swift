@testable import IsoKV
import Testing

@Suite("Ordered key index")
struct OrderedKeysTests {
    @Test func matchesASortedReference() {
        var idx = OrderedKeys()
        var reference = Set<Bytes>()
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            let k = Bytes("key\(Int.random(in: 0..<1500, using: &rng))")
            if Bool.random(using: &rng) {
                idx.insert(k); reference.insert(k)
            } else {
                idx.remove(k); reference.remove(k)
            }
        }
        let sorted = reference.sorted()
        #expect(idx.keys(in: .all, after: nil, reverse: false, max: .max) == sorted)
        #expect(idx.keys(in: .all, after: nil, reverse: true, max: .max) == sorted.reversed())
        #expect(idx.count == sorted.count)
        let r = KeyRange(from: "key3", to: "key6")
        #expect(idx.keys(in: r, after: nil, reverse: false, max: .max) == sorted.filter { r.contains($0) })
        #expect(idx.keys(in: r, after: nil, reverse: true, max: .max) == sorted.filter { r.contains($0) }.reversed())
        // Paging with a cursor gives the same keys.
        var paged: [Bytes] = []
        var cursor: Bytes?
        while true {
            let page = idx.keys(in: .all, after: cursor, reverse: false, max: 7)
            if page.isEmpty { break }
            paged += page
            cursor = page.last
        }
        #expect(paged == sorted)
        for k in sorted.prefix(50) { #expect(idx.contains(k)) }
    }
}
