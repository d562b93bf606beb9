import IsoKVCore
/// The ordered key index that scans walk: every key that has a chain in the directory, sorted, each with a value
/// (the engine stores the key's chain, so that a scan reads it without a directory lookup).
///
/// A list of sorted chunks (at most `maxChunk` keys each): insert and remove cost `O(log n + maxChunk)` instead of
/// a flat array's `O(n)`. It lives behind one `Locked` in ``Database`` (scans copy out a batch of entries under the
/// lock, then read the chains without it), which serializes key creation and scans but not point reads or updates
/// of existing keys. A concurrent skip list would remove that lock; see DESIGN.md.
struct OrderedIndex<Value> {
    struct Entry {
        let key: Bytes
        var value: Value
    }
    /// Invariants: no chunk is empty; each chunk is strictly increasing by key; the last key of chunk `i` is less
    /// than the first key of chunk `i + 1`.
    private(set) var chunks: [[Entry]] = []
    static var maxChunk: Int { 256 }

    var count: Int { chunks.reduce(0) { $0 + $1.count } }

    /// A position: chunk index and offset; `(chunks.count, 0)` is the end.
    struct Position { var chunk: Int; var offset: Int }

    /// The first position whose key is `>= key` (or `> key` when `strict`).
    func position(of key: Bytes, strict: Bool) -> Position {
        var lo = 0, hi = chunks.count
        while lo < hi {  // first chunk whose last key is >= key (> key when strict)
            let mid = (lo + hi) / 2
            let last = chunks[mid][chunks[mid].count - 1].key
            if strict ? !(key < last) : last < key { lo = mid + 1 } else { hi = mid }
        }
        guard lo < chunks.count else { return Position(chunk: chunks.count, offset: 0) }
        let c = chunks[lo]
        var a = 0, b = c.count
        while a < b {
            let mid = (a + b) / 2
            if strict ? !(key < c[mid].key) : c[mid].key < key { a = mid + 1 } else { b = mid }
        }
        return Position(chunk: lo, offset: a)
    }

    /// Inserts `key` with `value`, or replaces the value if `key` is present.
    mutating func insert(_ key: Bytes, _ value: Value) {
        let entry = Entry(key: key, value: value)
        if chunks.isEmpty { chunks = [[entry]]; return }
        var p = position(of: key, strict: false)
        if p.chunk == chunks.count {
            p = Position(chunk: chunks.count - 1, offset: chunks[chunks.count - 1].count)
        } else if p.offset < chunks[p.chunk].count && chunks[p.chunk][p.offset].key == key {
            chunks[p.chunk][p.offset].value = value
            return
        }
        chunks[p.chunk].insert(entry, at: p.offset)
        if chunks[p.chunk].count > Self.maxChunk {
            let half = chunks[p.chunk].count / 2
            let tail = Array(chunks[p.chunk][half...])
            chunks[p.chunk].removeSubrange(half...)
            chunks.insert(tail, at: p.chunk + 1)
        }
    }

    /// Removes `key` if present.
    mutating func remove(_ key: Bytes) {
        let p = position(of: key, strict: false)
        guard p.chunk < chunks.count, chunks[p.chunk][p.offset].key == key else { return }
        chunks[p.chunk].remove(at: p.offset)
        if chunks[p.chunk].isEmpty { chunks.remove(at: p.chunk) }
    }

    func contains(_ key: Bytes) -> Bool {
        let p = position(of: key, strict: false)
        return p.chunk < chunks.count && chunks[p.chunk][p.offset].key == key
    }

    /// Up to `max` keys of `range` strictly after `cursor` in scan order (strictly before it when `reverse`).
    func keys(in range: KeyRange, after cursor: Bytes?, reverse: Bool, max: Int) -> [Bytes] {
        entries(in: range, after: cursor, reverse: reverse, max: max).map(\.key)
    }

    /// Up to `max` entries of `range` strictly after `cursor` in scan order (strictly before it when `reverse`).
    func entries(in range: KeyRange, after cursor: Bytes?, reverse: Bool, max: Int) -> [Entry] {
        var out: [Entry] = []
        if !reverse {
            var p: Position
            if let cursor {
                p = position(of: cursor, strict: true)
            } else if let lower = range.lower {
                p = position(of: lower, strict: false)
            } else {
                p = Position(chunk: 0, offset: 0)
            }
            // Chunk by chunk: one access to `chunks` per chunk, not per entry.
            outer: while p.chunk < chunks.count && out.count < max {
                let chunk = chunks[p.chunk]
                for i in p.offset..<chunk.count {
                    if out.count == max { break outer }
                    if let upper = range.upper, !(chunk[i].key < upper) { break outer }
                    out.append(chunk[i])
                }
                p = Position(chunk: p.chunk + 1, offset: 0)
            }
        } else {
            // Start just before the first key >= bound.
            var p: Position
            if let cursor {
                p = position(of: cursor, strict: false)
            } else if let upper = range.upper {
                p = position(of: upper, strict: false)
            } else {
                p = Position(chunk: chunks.count, offset: 0)
            }
            while out.count < max {
                if p.offset == 0 {
                    if p.chunk == 0 { break }
                    p = Position(chunk: p.chunk - 1, offset: chunks[p.chunk - 1].count)
                }
                p.offset -= 1
                let e = chunks[p.chunk][p.offset]
                if let lower = range.lower, e.key < lower { break }
                out.append(e)
            }
        }
        return out
    }
}

/// The index of keys alone (tests, and any user that needs no value).
typealias OrderedKeys = OrderedIndex<Void>

extension OrderedIndex where Value == Void {
    mutating func insert(_ key: Bytes) { insert(key, ()) }
}
