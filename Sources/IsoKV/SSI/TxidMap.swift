/// A hash map from transaction ids to values, for the SSI state's tables (records, conflict edges, the active and
/// possibly-unsafe sets): open addressing with linear probing, a multiplicative (Fibonacci) hash of the id, and
/// deletion by backward shift (no tombstones). A value type with copy-on-write storage, like `Dictionary`.
///
/// Why not `Dictionary`: every lookup there hashes the key with SipHash (a keyed hash that resists collision
/// attacks), and a serializable commit makes a dozen lookups inside the SSI lock. Transaction ids are not chosen by
/// an attacker — they come from one counter — so one multiplication spreads them as well (consecutive ids land
/// far apart), at a fraction of the cost. Empty maps allocate nothing (most records never get an edge).
///
/// ```swift
/// var edges = TxidMap<ConflictEdge>()
/// edges[42] = ConflictEdge(key: "k")
/// if let e = edges[42] { print(e) }
/// edges[42] = nil
/// ```
///
/// Invariants (kept by every mutation): `slots.count` is 0 or a power of two ≥ `minimumCapacity`; a slot is empty
/// iff its key is 0; `count` is the number of non-empty slots and stays ≤ half the capacity; every key sits in the
/// probe run that starts at its home slot, with no empty slot between the home slot and it (what lookups and the
/// backward-shift deletion rely on). Keys are never 0 (transaction ids start at 1).
struct TxidMap<Value> {
    fileprivate struct Slot {
        var key: UInt64
        var value: Value?
    }
    private var slots: [Slot] = []
    /// `64 - log2(capacity)`: the home slot is the top bits of the product.
    private var shift: UInt64 = 64
    private(set) var count = 0

    private static var minimumCapacity: Int { 4 }

    init() {}

    var isEmpty: Bool { count == 0 }

    @inline(__always)
    private func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The slot holding `key`, or nil.
    @inline(__always)
    private func find(_ key: UInt64) -> Int? {
        guard count > 0 else { return nil }
        let mask = slots.count - 1
        var i = home(key)
        while true {
            let k = slots[i].key
            if k == key { return i }
            if k == 0 { return nil }
            i = (i + 1) & mask
        }
    }

    /// Whether `key` is present (no copy of its value: for a class, no reference count written).
    @inline(__always)
    func contains(_ key: UInt64) -> Bool { find(key) != nil }

    subscript(key: UInt64) -> Value? {
        get { find(key).flatMap { slots[$0].value } }
        set {
            if let newValue { insert(key, newValue) } else { _ = removeValue(forKey: key) }
        }
    }

    /// Sets `key`'s value; returns whether the key was new.
    @discardableResult
    mutating func insert(_ key: UInt64, _ value: Value) -> Bool {
        precondition(key != 0, "transaction id 0 is not a key")
        if let i = find(key) {
            slots[i].value = value
            return false
        }
        if (count + 1) * 2 > slots.count { grow() }
        let mask = slots.count - 1
        var i = home(key)
        while slots[i].key != 0 { i = (i + 1) & mask }
        slots[i] = Slot(key: key, value: value)
        count += 1
        return true
    }

    /// Removes `key`; returns its value, or nil if it was absent.
    @discardableResult
    mutating func removeValue(forKey key: UInt64) -> Value? {
        guard var hole = find(key) else { return nil }
        let mask = slots.count - 1
        let removed = slots[hole].value
        slots[hole] = Slot(key: 0, value: nil)
        count -= 1
        // Backward shift: move each later key of the run into the hole unless its home lies cyclically in
        // (hole, j] (then it is already as close to home as it can be).
        var j = hole
        while true {
            j = (j + 1) & mask
            let k = slots[j].key
            if k == 0 { break }
            let h = home(k)
            let staysPut = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
            if staysPut { continue }
            slots[hole] = slots[j]
            slots[j] = Slot(key: 0, value: nil)
            hole = j
        }
        return removed
    }

    mutating func removeAll() {
        slots = []
        shift = 64
        count = 0
    }

    private mutating func grow() {
        let old = slots
        let capacity = Swift.max(Self.minimumCapacity, old.count * 2)
        slots = Array(repeating: Slot(key: 0, value: nil), count: capacity)
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        count = 0
        let mask = capacity - 1
        for s in old where s.key != 0 {
            var i = home(s.key)
            while slots[i].key != 0 { i = (i + 1) & mask }
            slots[i] = s
            count += 1
        }
    }
}

extension TxidMap: Sequence {
    struct Iterator: IteratorProtocol {
        fileprivate let slots: [Slot]
        fileprivate var position = 0
        mutating func next() -> (key: UInt64, value: Value)? {
            while position < slots.count {
                defer { position += 1 }
                if slots[position].key != 0 { return (slots[position].key, slots[position].value!) }
            }
            return nil
        }
    }
    func makeIterator() -> Iterator { Iterator(slots: slots) }
    var underestimatedCount: Int { count }
}

/// A set of transaction ids on ``TxidMap``'s table (the same hash and layout).
///
/// ```swift
/// var active = TxidSet()
/// active.insert(7)
/// active.contains(7)  // true
/// ```
struct TxidSet: Sequence, ExpressibleByArrayLiteral {
    private var map = TxidMap<Void>()

    init() {}
    init(arrayLiteral elements: UInt64...) {
        for e in elements { insert(e) }
    }

    var count: Int { map.count }
    var isEmpty: Bool { map.isEmpty }
    func contains(_ t: UInt64) -> Bool { map[t] != nil }
    @discardableResult
    mutating func insert(_ t: UInt64) -> (inserted: Bool, memberAfterInsert: UInt64) { (map.insert(t, ()), t) }
    @discardableResult
    mutating func remove(_ t: UInt64) -> UInt64? { map.removeValue(forKey: t) == nil ? nil : t }

    struct Iterator: IteratorProtocol {
        fileprivate var base: TxidMap<Void>.Iterator
        mutating func next() -> UInt64? { base.next()?.key }
    }
    func makeIterator() -> Iterator { Iterator(base: map.makeIterator()) }
    var underestimatedCount: Int { map.count }
}
