/// A key as the history checker sees it: a byte string ordered lexicographically, like IsoKV's keys.
///
/// ```swift
/// let k: HistoryKey = "account/7"          // string literal
/// let raw = HistoryKey(bytes: [0x00, 0xFF])  // arbitrary bytes
/// ```
/// Printed as a quoted string when the bytes are printable UTF-8, as hex (`0x00ff`) otherwise.
public struct HistoryKey: Hashable, Comparable, Sendable, Codable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    /// The key's bytes; order is lexicographic over them (a prefix sorts first).
    public var bytes: [UInt8]

    /// A key from raw bytes.
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// A key from the UTF-8 bytes of `string`.
    public init(_ string: String) { self.bytes = Array(string.utf8) }

    /// A key from a string literal's UTF-8 bytes.
    public init(stringLiteral value: String) { self.init(value) }

    public static func < (a: HistoryKey, b: HistoryKey) -> Bool {
        a.bytes.lexicographicallyPrecedes(b.bytes)
    }

    /// `"x"` for printable UTF-8 keys, `0x…` otherwise.
    public var description: String {
        if let s = String(validating: bytes, as: UTF8.self),
            s.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F && $0 != "\"" && $0 != "\\" })
        {
            return "\"\(s)\""
        }
        return "0x"
            + bytes.map { b in
                let h = String(b, radix: 16)
                return h.count == 1 ? "0" + h : h
            }.joined()
    }

    // Encoded as a plain string when the bytes are UTF-8, as {"hex": "..."} otherwise, so JSON stays readable.
    private enum CodingKeys: String, CodingKey { case hex }

    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let s = try? single.decode(String.self) {
            self.init(s)
            return
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let hex = try c.decode(String.self, forKey: .hex)
        guard hex.count % 2 == 0 else {
            throw DecodingError.dataCorruptedError(forKey: .hex, in: c, debugDescription: "odd hex length")
        }
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            guard let b = UInt8(hex[i..<j], radix: 16) else {
                throw DecodingError.dataCorruptedError(forKey: .hex, in: c, debugDescription: "bad hex \(hex)")
            }
            out.append(b)
            i = j
        }
        self.init(bytes: out)
    }

    public func encode(to encoder: any Encoder) throws {
        if let s = String(validating: bytes, as: UTF8.self) {
            var c = encoder.singleValueContainer()
            try c.encode(s)
        } else {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(
                bytes.map { b in
                    let h = String(b, radix: 16)
                    return h.count == 1 ? "0" + h : h
                }.joined(), forKey: .hex)
        }
    }
}

/// The key interval a scan covered: what its predicate was, for deriving predicate anti-dependencies (phantoms).
///
/// ```swift
/// KeyRange(from: "room/1/", to: "room/1/\u{FF}")  // [from, to)
/// KeyRange(prefix: "room/1/")
/// KeyRange.all
/// ```
public struct KeyRange: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Inclusive lower bound; nil = unbounded below.
    public var lower: HistoryKey?
    /// Upper bound; nil = unbounded above. Exclusive unless `upperInclusive`.
    public var upper: HistoryKey?
    /// Whether `upper` itself is in the range (used for the effective range of a limited scan).
    public var upperInclusive: Bool

    /// `[from, to)`; nil bounds are unbounded.
    public init(from lower: HistoryKey?, to upper: HistoryKey?, upperInclusive: Bool = false) {
        self.lower = lower
        self.upper = upper
        self.upperInclusive = upperInclusive
    }

    /// Every key starting with `prefix`.
    public init(prefix: HistoryKey) {
        self.lower = prefix
        // The smallest key greater than every key with this prefix: drop trailing 0xFF bytes, increment the last.
        var end = prefix.bytes
        while let last = end.last, last == 0xFF { end.removeLast() }
        if end.isEmpty {
            self.upper = nil
        } else {
            end[end.count - 1] += 1
            self.upper = HistoryKey(bytes: end)
        }
        self.upperInclusive = false
    }

    /// The whole key space.
    public static let all = KeyRange(from: nil, to: nil)

    /// Whether `key` lies inside the range.
    public func contains(_ key: HistoryKey) -> Bool {
        if let lower, key < lower { return false }
        if let upper {
            if upperInclusive ? upper < key : !(key < upper) { return false }
        }
        return true
    }

    /// `["a", "c")`, `["a", +inf)`, `(-inf, "c"]`.
    public var description: String {
        let lo = lower.map { "[\($0)" } ?? "(-inf"
        let hi = upper.map { "\($0)" + (upperInclusive ? "]" : ")") } ?? "+inf)"
        return "\(lo), \(hi)"
    }
}
