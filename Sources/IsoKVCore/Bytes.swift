import Foundation

/// A key or a value: a byte string, ordered lexicographically byte by byte (as `memcmp`, shorter prefix first).
///
/// ```swift
/// let k: Bytes = "user/42"                       // a string literal is its UTF-8 bytes
/// let v = try Bytes(json: ["name": "Ada"])       // Codable convenience (JSON)
/// let name = k.string                            // "user/42" (nil if not valid UTF-8)
/// Bytes("a") < Bytes("ab")                       // true
/// ```
///
/// Storage: a byte string of up to ``inlineCapacity`` (15) bytes is kept inline, in two machine words (no heap
/// allocation, so copying it writes no reference count, and comparing or hashing it reads no other memory); a longer
/// one in a `[UInt8]`, or — for a value read from the engine — in the engine's own version object, shared rather than
/// copied. Short byte strings are always inline (never on the heap), which is what makes equality and hashing a
/// few word operations for short keys; a long one compares and hashes by its bytes whichever its storage.
/// Dictionaries and sets hash a `Bytes` with a keyed multiply-mix hash (wyhash's construction, keyed by the table's per-process random seed) instead of SipHash;
/// `hash(into:)` feeds the standard `Hasher`.
public struct Bytes: Hashable, Comparable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// Byte strings of at most this many bytes are stored inline.
    public static let inlineCapacity = 15

    @usableFromInline
    enum Storage: Sendable {
        /// At most 15 bytes: byte `i` is byte `i` (little-endian) of `low` for `i < 8`, of `high` for `8 ≤ i < 15`;
        /// bytes past the count are zero; the top byte of `high` is the count.
        case inline(low: UInt64, high: UInt64)
        /// More than 15 bytes (never fewer: short strings are always inline).
        case heap([UInt8])
        /// More than 15 bytes kept in an engine object (``SharedBytes``), shared by every value read from it.
        case shared(SharedBytesReference)
    }

    @usableFromInline var storage: Storage

    @inlinable
    init(storage: Storage) { self.storage = storage }

    /// The bytes themselves. Reading it from an inline (≤ 15-byte) value builds an array; use
    /// ``withUnsafeBytes(_:)`` on hot paths.
    public var bytes: [UInt8] {
        get {
            switch storage {
            case .heap(let a): return a
            case .inline, .shared: return withUnsafeBytes { Array($0) }
            }
        }
        set { storage = Self.storage(of: newValue) }
        _modify {
            var a: [UInt8]
            if case .heap(let h) = storage {
                a = h
                storage = .inline(low: 0, high: 0)  // drop our reference, so that `a` is unique
            } else {
                a = bytes
            }
            defer { storage = Self.storage(of: a) }
            yield &a
        }
    }

    /// The empty byte string.
    public static let empty = Bytes([UInt8]())

    @inlinable
    public init(_ bytes: [UInt8]) { storage = Self.storage(of: bytes) }

    public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 { self.init(Array(bytes)) }

    /// The UTF-8 bytes of `string`.
    public init(_ string: String) {
        var s = string
        if let st = s.withUTF8({ $0.count <= Self.inlineCapacity ? Self.pack(UnsafeRawBufferPointer($0)) : nil }) {
            storage = st
        } else {
            storage = .heap(Array(string.utf8))
        }
    }

    public init(stringLiteral value: String) { self.init(value) }

    /// The two words of an inline (≤ 15-byte) byte string, or nil for a longer one: with ``init(inlineWords:)``, a
    /// 16-byte form for storage that keeps short keys without the enum's tag byte (the engine's chains).
    @inlinable
    package var inlineWords: (low: UInt64, high: UInt64)? {
        if case .inline(let low, let high) = storage { return (low, high) }
        return nil
    }

    /// The byte string whose ``inlineWords`` are `words`.
    @inlinable
    package init(inlineWords words: (low: UInt64, high: UInt64)) {
        storage = .inline(low: words.low, high: words.high)
    }

    /// The shared object of a long byte string stored in one, or nil.
    @inlinable
    package var sharedObject: SharedBytes? {
        if case .shared(let s) = storage { return s.object }
        return nil
    }

    /// The bytes of `object` (which must have some), shared when longer than ``inlineCapacity``, inline otherwise.
    @inlinable
    package init(sharing object: SharedBytes) {
        let n = object.count
        if n > Self.inlineCapacity {
            storage = .shared(SharedBytesReference(object))
        } else {
            storage = object.withUnsafeBytes { Self.pack($0) }
        }
    }

    /// The canonical storage of `bytes`.
    @inlinable
    static func storage(of bytes: [UInt8]) -> Storage {
        if bytes.count > inlineCapacity { return .heap(bytes) }
        return bytes.withUnsafeBytes { pack($0) }
    }

    /// Packs at most 15 bytes into the inline form.
    @inlinable
    static func pack(_ p: UnsafeRawBufferPointer) -> Storage {
        var low: UInt64 = 0
        var high: UInt64 = 0
        let n = p.count
        var i = 0
        while i < n && i < 8 {
            low |= UInt64(p[i]) &<< UInt64(8 &* i)
            i &+= 1
        }
        while i < n {
            high |= UInt64(p[i]) &<< UInt64(8 &* (i &- 8))
            i &+= 1
        }
        return .inline(low: low, high: high | UInt64(truncatingIfNeeded: n) &<< 56)
    }

    /// Calls `body` with the bytes, without copying them to the heap.
    ///
    /// ```swift
    /// let first = key.withUnsafeBytes { $0.first }
    /// ```
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .heap(let a):
            return try a.withUnsafeBytes(body)
        case .shared(let s):
            return try s.object.withUnsafeBytes(body)
        case .inline(let low, let high):
            var words = (low.littleEndian, high.littleEndian)
            let n = Int(truncatingIfNeeded: high &>> 56)
            return try Swift.withUnsafeBytes(of: &words) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    /// The bytes decoded as UTF-8, or nil if they are not valid UTF-8.
    public var string: String? { withUnsafeBytes { String(validating: $0, as: UTF8.self) } }

    @inlinable
    public var count: Int {
        switch storage {
        case .inline(_, let high): return Int(truncatingIfNeeded: high &>> 56)
        case .heap(let a): return a.count
        case .shared(let s): return s.object.count
        }
    }

    @inlinable
    public var isEmpty: Bool { count == 0 }

    @inlinable
    public static func == (lhs: Bytes, rhs: Bytes) -> Bool {
        switch (lhs.storage, rhs.storage) {
        case (.inline(let l0, let h0), .inline(let l1, let h1)): return l0 == l1 && h0 == h1
        case (.inline, _), (_, .inline): return false  // a short string is never on the heap, a long one never inline
        default: return lhs.withUnsafeBytes { a in rhs.withUnsafeBytes { sameBytes(a, $0) } }
        }
    }

    /// Whether two byte buffers hold the same bytes (`memcmp`, after the count; one buffer is equal to itself).
    @inlinable
    package static func sameBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0, let x = a.baseAddress, let y = b.baseAddress else { return true }
        return x == y || memcmp(x, y, a.count) == 0
    }

    /// Feeds the bytes to the hasher (two words for an inline value; the bytes and the count otherwise).
    @inlinable
    public func hash(into hasher: inout Hasher) {
        switch storage {
        case .inline(let low, let high):
            hasher.combine(low)
            hasher.combine(high)
        case .heap, .shared:
            withUnsafeBytes { hasher.combine(bytes: $0) }
            hasher.combine(count)
        }
    }

    /// The hash dictionaries and sets use: a keyed multiply-mix hash (see ``Bytes``) instead of SipHash, which cost
    /// more than the rest of a directory lookup. `seed` is the table's seed (per-process random unless
    /// `SWIFT_DETERMINISTIC_HASHING` is set); it enters every multiplication, so collisions cannot be chosen without
    /// it.
    @inlinable
    public func _rawHashValue(seed: Int) -> Int {
        let s = UInt64(bitPattern: Int64(seed))
        switch storage {
        case .inline(let low, let high):
            let h = Self.mum(low ^ s ^ Self.k0, high ^ (s &>> 32 | s &<< 32) ^ Self.k1)
            return Int(truncatingIfNeeded: Self.mum(h ^ Self.k2, s ^ Self.k3))
        case .heap, .shared:
            return withUnsafeBytes { Int(truncatingIfNeeded: Self.hashBytes($0, seed: s)) }
        }
    }

    @usableFromInline static var k0: UInt64 { 0xa076_1d64_78bd_642f }
    @usableFromInline static var k1: UInt64 { 0xe703_7ed1_a0b4_28db }
    @usableFromInline static var k2: UInt64 { 0x8ebc_6af0_9c88_c6e3 }
    @usableFromInline static var k3: UInt64 { 0x5899_65cc_7537_4cc3 }

    /// The high and low halves of the 128-bit product, xored (wyhash's mixing step).
    @inlinable @inline(__always)
    static func mum(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (hi, lo) = a.multipliedFullWidth(by: b)
        return hi ^ lo
    }

    /// wyhash-style hash of a byte string of any length, keyed by `seed`: 16 bytes per multiplication.
    @inlinable
    static func hashBytes(_ p: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        let n = p.count
        var h = mum(seed ^ k0, k1 ^ UInt64(truncatingIfNeeded: n))
        var i = 0
        while n &- i >= 16 {
            h = mum(
                p.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ k1 ^ seed,
                p.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self) ^ h)
            i &+= 16
        }
        var a: UInt64 = 0
        var b: UInt64 = 0
        var j = 0
        while i < n {
            if j < 8 { a |= UInt64(p[i]) &<< UInt64(8 &* j) } else { b |= UInt64(p[i]) &<< UInt64(8 &* (j &- 8)) }
            i &+= 1
            j &+= 1
        }
        h = mum(a ^ k2 ^ seed, b ^ h)
        return mum(h ^ k3, seed ^ k0)
    }

    @inlinable
    public static func < (lhs: Bytes, rhs: Bytes) -> Bool {
        if case .inline(let l0, let h0) = lhs.storage, case .inline(let l1, let h1) = rhs.storage {
            return inlineLess((l0, h0), (l1, h1))
        }
        return lessThan(lhs, rhs)
    }

    /// `<` on two inline keys' words (``inlineWords``).
    @inlinable @inline(__always)
    package static func inlineLess(_ a: (low: UInt64, high: UInt64), _ b: (low: UInt64, high: UInt64)) -> Bool {
        // Byte 0 is the low byte of `low`: byte-swapped, the words compare as the bytes do (zero padding after
        // the count compares equal, so a tie goes to the shorter string, as `memcmp` order wants).
        if a.low != b.low { return a.low.byteSwapped < b.low.byteSwapped }
        let d0 = a.high & 0x00FF_FFFF_FFFF_FFFF
        let d1 = b.high & 0x00FF_FFFF_FFFF_FFFF
        if d0 != d1 { return d0.byteSwapped < d1.byteSwapped }
        return a.high &>> 56 < b.high &>> 56
    }

    /// The order of `<` on raw bytes: `memcmp` on the common prefix, then the shorter first.
    @inlinable
    package static func lessThan(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let n = Swift.min(a.count, b.count)
        if n > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            let c = memcmp(pa, pb, n)
            if c != 0 { return c < 0 }
        }
        return a.count < b.count
    }

    /// `memcmp` on the common prefix, then the shorter first: the order of `lexicographicallyPrecedes`, without its
    /// generic element-by-element loop (the scan index compares keys on every step).
    @usableFromInline
    static func lessThan(_ lhs: Bytes, _ rhs: Bytes) -> Bool {
        lhs.withUnsafeBytes { a in rhs.withUnsafeBytes { b in lessThan(a, b) } }
    }

    /// The UTF-8 text in quotes when printable, otherwise `0x…` hex.
    public var description: String {
        if let s = string, !s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "\"\(s)\""
        }
        return "0x" + bytes.map { String(format: "%02x", $0) }.joined()
    }
}

// MARK: - Codable and number conveniences

extension Bytes: Codable {
    /// Encoded as a string when the bytes are valid UTF-8, otherwise as an array of numbers.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            self.init(s)
        } else {
            self.init(try c.decode([UInt8].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let s = string { try c.encode(s) } else { try c.encode(bytes) }
    }
}

extension Bytes {
    /// The JSON encoding of `value`.
    ///
    /// ```swift
    /// try await tx.put("user/1", Bytes(json: User(name: "Ada")))
    /// let user = try await tx.get("user/1")?.decode(User.self)
    /// ```
    public init<T: Encodable>(json value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        self.init([UInt8](try encoder.encode(value)))
    }

    /// Decodes the bytes as JSON into `type`. Throws ``IsoKVError/Code/invalidInput`` if they do not decode.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw IsoKVError(.invalidInput, "value does not decode as \(T.self): \(error)")
        }
    }

    /// A 64-bit integer as decimal ASCII text (the representation ``KeyValueStore/increment(_:by:)`` uses).
    public init(_ number: Int64) { self.init(String(number)) }

    /// The bytes parsed as a decimal `Int64`, or nil.
    public var int64: Int64? { string.flatMap { Int64($0) } }
}
