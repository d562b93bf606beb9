import Foundation

/// A key or a value: a byte string, ordered lexicographically byte by byte (as `memcmp`, shorter prefix first).
///
/// ```swift
/// let k: Bytes = "user/42"                       // a string literal is its UTF-8 bytes
/// let v = try Bytes(json: ["name": "Ada"])       // Codable convenience (JSON)
/// let name = k.string                            // "user/42" (nil if not valid UTF-8)
/// Bytes("a") < Bytes("ab")                       // true
/// ```
public struct Bytes: Hashable, Comparable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The bytes themselves.
    public var bytes: [UInt8]

    /// The empty byte string.
    public static let empty = Bytes([UInt8]())

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 { self.bytes = Array(bytes) }

    /// The UTF-8 bytes of `string`.
    public init(_ string: String) { self.bytes = Array(string.utf8) }

    public init(stringLiteral value: String) { self.init(value) }

    /// The bytes decoded as UTF-8, or nil if they are not valid UTF-8.
    public var string: String? { String(validating: bytes, as: UTF8.self) }

    public var count: Int { bytes.count }
    public var isEmpty: Bool { bytes.isEmpty }

    public static func == (lhs: Bytes, rhs: Bytes) -> Bool { lhs.bytes == rhs.bytes }

    /// Feeds the bytes to the hasher in one call (the synthesized form would combine them one by one).
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        hasher.combine(bytes.count)
    }

    public static func < (lhs: Bytes, rhs: Bytes) -> Bool {
        // memcmp on the common prefix, then the shorter first: the order of `lexicographicallyPrecedes`, without
        // its generic element-by-element loop (the scan index compares keys on every step).
        lhs.bytes.withUnsafeBufferPointer { a in
            rhs.bytes.withUnsafeBufferPointer { b in
                let n = Swift.min(a.count, b.count)
                if n > 0, let pa = a.baseAddress, let pb = b.baseAddress {
                    let c = memcmp(pa, pb, n)
                    if c != 0 { return c < 0 }
                }
                return a.count < b.count
            }
        }
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
