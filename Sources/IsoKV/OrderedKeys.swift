import IsoKVCore

/// The ordered key index that scans walk: every key that has a chain in the directory, sorted, each with a value
/// (the engine stores the key's chain, so that a scan reads it without a directory lookup).
///
/// A persistent (immutable, path-copying) B+tree: `insert` and `remove` never change a node that exists, they build
/// new nodes along the path from the root to the leaf (`O(log n)` nodes of at most `maxLeaf`/`maxFanout` slots) and
/// share every other node with the old tree. So a copy of an `OrderedIndex` is a snapshot that no later change
/// affects, and a reader may walk one while a writer builds the next: ``ScanIndex`` publishes each new version
/// atomically and scans walk the published one without a lock.
///
/// ```swift
/// var idx = OrderedKeys()
/// idx.insert("b"); idx.insert("a")
/// let frozen = idx               // O(1): shares the nodes
/// idx.remove("a")
/// frozen.keys(in: .all, after: nil, reverse: false, max: 10)   // ["a", "b"]
/// ```
///
/// Nodes are not merged when they shrink: a leaf or inner node is dropped when it becomes empty, and a root with one
/// child is replaced by that child. Deletes are rare in the engine (only garbage collection of deleted keys removes
/// entries), so the tree stays close to the shape inserts give it.
struct OrderedIndex<Value: OrderedIndexValue> {
    /// A key and its value: 24 bytes for a chain (a `Bytes` field would take 17, padded to 24, for 32 in all).
    struct Entry {
        /// The key's words, borrowed from `value` (which owns a long key's object; see ``OrderedIndexValue``).
        let keyWords: ChainKey
        /// Immutable: a new value needs a new entry (the words may point into the old value's key).
        let value: Value

        /// An entry for `value`, whose key must be `key`.
        @inline(__always)
        init(key: Bytes, value: Value) {
            keyWords = value.indexKey
            self.value = value
            assert(keyWords.equals(key), "an index entry's value must own its key")
        }

        /// The key (a long key shares the value's object).
        @inline(__always)
        var key: Bytes { keyWords.bytes }
    }

    /// A node; immutable once built. A leaf has `entries` (strictly increasing by key) and no children; an inner
    /// node has `children` (at least one) and `separators` of the same count: every key in `children[i]` is
    /// `≥ separators[i]` for `i ≥ 1` and `< separators[i + 1]`; `separators[0]` is never read (the parent's
    /// separator bounds the node from below).
    final class Node: @unchecked Sendable {
        // @unchecked Sendable: every stored property is a `let` of values that are never mutated after init.
        let entries: [Entry]
        let separators: [Bytes]
        let children: [Node]

        init(entries: [Entry]) {
            self.entries = entries
            self.separators = []
            self.children = []
        }

        init(separators: [Bytes], children: [Node]) {
            self.entries = []
            self.separators = separators
            self.children = children
        }

        var isLeaf: Bool { children.isEmpty }

        /// The child whose range holds `key`: the last `i ≥ 1` with `separators[i] ≤ key`, else 0.
        @inline(__always)
        func route(_ key: Bytes) -> Int {
            var lo = 1, hi = separators.count  // first i >= 1 with key < separators[i]
            while lo < hi {
                let mid = (lo + hi) / 2
                if key < separators[mid] { hi = mid } else { lo = mid + 1 }
            }
            return lo - 1
        }

        /// The child whose range holds the greatest key `< key`: the last `i ≥ 1` with `separators[i] < key`, else 0.
        @inline(__always)
        func routeBefore(_ key: Bytes) -> Int {
            var lo = 1, hi = separators.count  // first i >= 1 with key <= separators[i]
            while lo < hi {
                let mid = (lo + hi) / 2
                if !(separators[mid] < key) { hi = mid } else { lo = mid + 1 }
            }
            return lo - 1
        }

        /// In a leaf: the first index whose key is `≥ key` (`> key` when `strict`).
        @inline(__always)
        func lowerBound(_ key: Bytes, strict: Bool) -> Int {
            var a = 0, b = entries.count
            while a < b {
                let mid = (a + b) / 2
                let words = entries[mid].keyWords
                if strict ? !words.follows(key) : words.precedes(key) { a = mid + 1 } else { b = mid }
            }
            return a
        }
    }

    /// Invariants: `root` is nil or holds at least one entry; no node is empty; all leaves are at the same depth;
    /// keys are strictly increasing in leaf order; `count` is the number of entries.
    private(set) var root: Node?
    private(set) var count = 0

    static var maxLeaf: Int { 64 }
    static var maxFanout: Int { 64 }

    init() {}

    // MARK: Changes (path copying)

    /// Inserts `key` with `value`, or replaces the value if `key` is present.
    mutating func insert(_ key: Bytes, _ value: Value) {
        guard let root else {
            self.root = Node(entries: [Entry(key: key, value: value)])
            count = 1
            return
        }
        let (node, split, inserted) = Self.insert(key, value, into: root)
        if let split {
            self.root = Node(separators: [Bytes.empty, split.separator], children: [node, split.node])
        } else {
            self.root = node
        }
        if inserted { count += 1 }
    }

    private static func insert(_ key: Bytes, _ value: Value, into node: Node)
        -> (Node, split: (separator: Bytes, node: Node)?, inserted: Bool)
    {
        if node.isLeaf {
            var entries = node.entries
            let at = node.lowerBound(key, strict: false)
            if at < entries.count && entries[at].keyWords.equals(key) {
                entries[at] = Entry(key: key, value: value)
                return (Node(entries: entries), nil, false)
            }
            entries = entries.inserting(Entry(key: key, value: value), at: at)
            if entries.count <= maxLeaf { return (Node(entries: entries), nil, true) }
            // Appending past a full leaf's last key (ascending inserts: loads, new keys in key order) keeps the
            // leaf full and starts a new one, as PostgreSQL's rightmost page split and SQLite's quick balance do;
            // halving there would leave every leaf of an ascending load half empty for good.
            let half = at == entries.count - 1 ? entries.count - 1 : entries.count / 2
            let right = Array(entries[half...])
            return (Node(entries: Array(entries[..<half])), (right[0].key, Node(entries: right)), true)
        }
        let i = node.route(key)
        let (child, split, inserted) = insert(key, value, into: node.children[i])
        // One copy of each array: the exactly sized one `inserting` builds after a split, else the copy on write.
        var children = split.map { node.children.inserting($0.node, at: i + 1) } ?? node.children
        children[i] = child
        let separators = split.map { node.separators.inserting($0.separator, at: i + 1) } ?? node.separators
        if children.count <= maxFanout {
            return (Node(separators: separators, children: children), nil, inserted)
        }
        // The same for inner nodes: a split of the last child (its new node appended at the end) starts a new
        // inner node with it.
        let half = split != nil && i + 1 == children.count - 1 ? children.count - 1 : children.count / 2
        let right = Node(separators: Array(separators[half...]), children: Array(children[half...]))
        let left = Node(separators: Array(separators[..<half]), children: Array(children[..<half]))
        return (left, (separators[half], right), inserted)
    }

    /// Removes `key` if present; returns whether it was.
    @discardableResult
    mutating func remove(_ key: Bytes) -> Bool {
        guard let root else { return false }
        let (node, removed) = Self.remove(key, from: root)
        guard removed else { return false }
        var newRoot = node
        while let r = newRoot, !r.isLeaf, r.children.count == 1 { newRoot = r.children[0] }
        self.root = newRoot
        count -= 1
        return true
    }

    /// The node without `key` (nil if it became empty), and whether `key` was there.
    private static func remove(_ key: Bytes, from node: Node) -> (Node?, Bool) {
        if node.isLeaf {
            let at = node.lowerBound(key, strict: false)
            guard at < node.entries.count, node.entries[at].keyWords.equals(key) else { return (node, false) }
            if node.entries.count == 1 { return (nil, true) }
            return (Node(entries: node.entries.removing(at: at)), true)
        }
        let i = node.route(key)
        let (child, removed) = remove(key, from: node.children[i])
        guard removed else { return (node, false) }
        var children = node.children
        var separators = node.separators
        if let child {
            children[i] = child
        } else {
            if children.count == 1 { return (nil, true) }
            children = children.removing(at: i)
            separators = separators.removing(at: i)
        }
        return (Node(separators: separators, children: children), true)
    }

    // MARK: Reads

    /// The value stored for `key`.
    func value(for key: Bytes) -> Value? {
        guard var node = root else { return nil }
        while !node.isLeaf { node = node.children[node.route(key)] }
        let at = node.lowerBound(key, strict: false)
        return at < node.entries.count && node.entries[at].keyWords.equals(key) ? node.entries[at].value : nil
    }

    func contains(_ key: Bytes) -> Bool { value(for: key) != nil }

    /// Calls `body` with each entry of `range` strictly after `cursor` in scan order (strictly before it when
    /// `reverse`), in order, until `body` returns false. No allocation: it walks the nodes in place.
    func forEach(
        in range: KeyRange, after cursor: Bytes?, reverse: Bool, _ body: (Entry) throws -> Bool
    ) rethrows {
        try forEachInPlace(in: range, after: cursor, reverse: reverse) { try body($0.pointee) }
    }

    /// ``forEach(in:after:reverse:_:)`` lending each entry where it lies in its leaf: `body` gets a pointer valid
    /// only during the call, so that a walk can read an entry's parts without copying it (a copy retains the
    /// entry's references, writing reference counts that other threads' walks read).
    func forEachInPlace(
        in range: KeyRange, after cursor: Bytes?, reverse: Bool, _ body: (UnsafePointer<Entry>) throws -> Bool
    ) rethrows {
        guard let root else { return }
        if !reverse {
            let upper = range.upper
            if let cursor {
                _ = try Self.visitForward(root, from: cursor, strict: true, upper: upper, body)
            } else {
                _ = try Self.visitForward(root, from: range.lower, strict: false, upper: upper, body)
            }
        } else {
            _ = try Self.visitReverse(root, before: cursor ?? range.upper, lower: range.lower, body)
        }
    }

    /// Forward ``forEachInPlace(in:after:reverse:_:)`` by runs: `body` gets, leaf by leaf and in order, the
    /// contiguous entries of the leaf that are in `range` (never empty), in place and valid only during the call,
    /// until it returns false. Lets a caller work on several entries at once (a scan loads the chains of a group of
    /// entries before it reads any of them, so that their cache misses overlap).
    func forEachRunInPlace(in range: KeyRange, _ body: (UnsafeBufferPointer<Entry>) throws -> Bool) rethrows {
        guard let root else { return }
        _ = try Self.visitRuns(root, from: range.lower, upper: range.upper, body)
    }

    private static func visitRuns(
        _ node: Node, from: Bytes?, upper: Bytes?, _ body: (UnsafeBufferPointer<Entry>) throws -> Bool
    ) rethrows -> Bool {
        if node.isLeaf {
            let start = from.map { node.lowerBound($0, strict: false) } ?? 0
            let end = upper.map { node.lowerBound($0, strict: false) } ?? node.entries.count
            if start < end {
                let more = try node.entries.withUnsafeBufferPointer { entries in
                    try body(UnsafeBufferPointer(rebasing: entries[start..<end]))
                }
                if !more { return false }
            }
            return end == node.entries.count
        }
        let children = node.children
        let first = from.map { node.route($0) } ?? 0
        var c = first
        while c < children.count {
            if try !visitRuns(children[c], from: c == first ? from : nil, upper: upper, body) { return false }
            c += 1
        }
        return true
    }

    /// Entries `≥ from` (`> from` when `strict`; all when nil) and `< upper`, ascending. Returns false once `body`
    /// stopped the walk or the upper bound was reached.
    private static func visitForward(
        _ node: Node, from: Bytes?, strict: Bool, upper: Bytes?, _ body: (UnsafePointer<Entry>) throws -> Bool
    ) rethrows -> Bool {
        if node.isLeaf {
            var i = from.map { node.lowerBound($0, strict: strict) } ?? 0
            return try node.entries.withUnsafeBufferPointer { entries in
                while i < entries.count {
                    if let upper, !entries[i].keyWords.precedes(upper) { return false }
                    if try !body(entries.baseAddress! + i) { return false }
                    i += 1
                }
                return true
            }
        }
        let children = node.children
        let first = from.map { node.route($0) } ?? 0
        var c = first
        while c < children.count {
            if try !visitForward(children[c], from: c == first ? from : nil, strict: strict, upper: upper, body) {
                return false
            }
            c += 1
        }
        return true
    }

    /// Entries `< before` (all when nil) and `≥ lower`, descending.
    private static func visitReverse(
        _ node: Node, before: Bytes?, lower: Bytes?, _ body: (UnsafePointer<Entry>) throws -> Bool
    ) rethrows -> Bool {
        if node.isLeaf {
            var i = (before.map { node.lowerBound($0, strict: false) } ?? node.entries.count) - 1
            return try node.entries.withUnsafeBufferPointer { entries in
                while i >= 0 {
                    if let lower, entries[i].keyWords.precedes(lower) { return false }
                    if try !body(entries.baseAddress! + i) { return false }
                    i -= 1
                }
                return true
            }
        }
        let children = node.children
        let first = before.map { node.routeBefore($0) } ?? children.count - 1
        var c = first
        while c >= 0 {
            if try !visitReverse(children[c], before: c == first ? before : nil, lower: lower, body) { return false }
            c -= 1
        }
        return true
    }

    /// Up to `max` keys of `range` strictly after `cursor` in scan order (strictly before it when `reverse`).
    func keys(in range: KeyRange, after cursor: Bytes?, reverse: Bool, max: Int) -> [Bytes] {
        entries(in: range, after: cursor, reverse: reverse, max: max).map(\.key)
    }

    /// Up to `max` entries of `range` strictly after `cursor` in scan order (strictly before it when `reverse`).
    func entries(in range: KeyRange, after cursor: Bytes?, reverse: Bool, max: Int) -> [Entry] {
        var out: [Entry] = []
        if max <= 0 { return out }
        forEach(in: range, after: cursor, reverse: reverse) { entry in
            out.append(entry)
            return out.count < max
        }
        return out
    }

    /// Leaves and their entries (tests and statistics: entries ÷ (leaves × ``maxLeaf``) is the leaves' fill).
    func leafOccupancy() -> (leaves: Int, entries: Int) {
        var leaves = 0
        var entries = 0
        func walk(_ node: Node) {
            if node.isLeaf {
                leaves += 1
                entries += node.entries.count
            } else {
                node.children.forEach(walk)
            }
        }
        if let root { walk(root) }
        return (leaves, entries)
    }

    /// Checks the structural invariants (tests): sorted keys, separators bounding their children, no empty node,
    /// leaves at one depth, `count` right. Returns a description of the first violation, or nil.
    func structuralProblem() -> String? {
        guard let root else { return count == 0 ? nil : "empty tree with count \(count)" }
        var total = 0
        var leafDepth: Int?
        var previous: Bytes?
        func walk(_ node: Node, depth: Int, lower: Bytes?, upper: Bytes?) -> String? {
            if node.isLeaf {
                if node.entries.isEmpty { return "empty leaf" }
                if let d = leafDepth, d != depth { return "leaves at depths \(d) and \(depth)" }
                leafDepth = depth
                for e in node.entries {
                    if let p = previous, !(p < e.key) { return "keys not increasing at \(e.key)" }
                    if let lower, e.key < lower { return "key \(e.key) below its separator \(lower)" }
                    if let upper, !(e.key < upper) { return "key \(e.key) not below the next separator \(upper)" }
                    previous = e.key
                    total += 1
                }
                return nil
            }
            if node.children.isEmpty || node.separators.count != node.children.count {
                return "inner node with \(node.children.count) children, \(node.separators.count) separators"
            }
            for (i, child) in node.children.enumerated() {
                let lo = i == 0 ? lower : node.separators[i]
                let hi = i + 1 < node.children.count ? node.separators[i + 1] : upper
                if let problem = walk(child, depth: depth + 1, lower: lo, upper: hi) { return problem }
            }
            return nil
        }
        if let problem = walk(root, depth: 0, lower: nil, upper: nil) { return problem }
        return total == count ? nil : "count \(count) but \(total) entries"
    }
}

extension Array {
    /// A copy with `element` inserted at `index`, allocated for exactly the new count. Inserting into a copy of a
    /// shared array would copy it into a buffer of twice the capacity (the growth policy for appends): every node the
    /// persistent tree builds by insertion would keep up to half its slots empty for good.
    @inline(__always)
    func inserting(_ element: Element, at index: Int) -> [Element] {
        precondition(index >= 0 && index <= count, "index out of range")
        return [Element](unsafeUninitializedCapacity: count + 1) { buffer, initialized in
            let base = buffer.baseAddress!  // capacity ≥ 1
            withUnsafeBufferPointer { source in
                if index > 0 { base.initialize(from: source.baseAddress!, count: index) }
                (base + index).initialize(to: element)
                if index < count {
                    (base + index + 1).initialize(from: source.baseAddress! + index, count: count - index)
                }
            }
            initialized = count + 1
        }
    }

    /// A copy without the element at `index`, allocated for exactly the new count.
    @inline(__always)
    func removing(at index: Int) -> [Element] {
        precondition(index >= 0 && index < count, "index out of range")
        if count == 1 { return [] }
        return [Element](unsafeUninitializedCapacity: count - 1) { buffer, initialized in
            let base = buffer.baseAddress!  // capacity ≥ 1
            withUnsafeBufferPointer { source in
                if index > 0 { base.initialize(from: source.baseAddress!, count: index) }
                let after = count - index - 1
                if after > 0 { (base + index).initialize(from: source.baseAddress! + index + 1, count: after) }
            }
            initialized = count - 1
        }
    }
}

/// A value an ``OrderedIndex`` entry can hold: it owns the storage of its key, which the entry borrows (two words,
/// no reference count of its own). The engine's value is the key's chain (``KeyChain``), which holds its key.
protocol OrderedIndexValue {
    /// The key's words; a long key's object stays valid while this value is alive.
    var indexKey: ChainKey { get }
}

/// The index of keys alone (tests): each entry's value is a chain with no version, which holds the key.
typealias OrderedKeys = OrderedIndex<KeyChain>

extension OrderedIndex where Value == KeyChain {
    mutating func insert(_ key: Bytes) { insert(key, KeyChain.make(key: key)) }
}
