import Foundation
import IsoKVCore

/// Keys and values between bytes and text: percent-encoded URL paths, base64 query parameters and JSON fields.
///
/// - In a URL path a key is the RFC 3986 percent-encoding of its bytes, decoded byte by byte (`%2F` is a `/` inside
///   the key, never a separator). Empty, `.` and `..` segments are refused: proxies normalize them.
/// - In JSON a key is `key` (UTF-8 text) or `key_b64` (padded base64), exactly one of them. Output uses `key` when
///   the bytes are UTF-8 without control characters and `key_b64` otherwise (or always with `?encoding=b64`);
///   the other member is `null`. Values follow the same rule with `value` / `value_b64`.
enum KeyText {
    /// The text of `bytes` if it is valid UTF-8 without control characters, else nil.
    static func text(_ bytes: Bytes) -> String? {
        guard let s = bytes.string else { return nil }
        if s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) { return nil }
        return s
    }

    static func base64(_ bytes: Bytes) -> String { Data(bytes.bytes).base64EncodedString() }

    /// `[(name, text or null), (name_b64, base64 or null)]`; both null when `bytes` is nil.
    static func fields(_ bytes: Bytes?, name: String, forceBase64: Bool) -> [(String, JSONValue)] {
        guard let bytes else { return [(name, .null), (name + "_b64", .null)] }
        if !forceBase64, let s = text(bytes) { return [(name, .string(s)), (name + "_b64", .null)] }
        return [(name, .null), (name + "_b64", .string(base64(bytes)))]
    }

    /// Decodes padded RFC 4648 base64 (no whitespace, no URL alphabet). Throws `22P02` naming `pointer`.
    static func decodeBase64(_ s: String, pointer: String) throws(ServerError) -> Bytes {
        guard s.count % 4 == 0, let data = Data(base64Encoded: s) else {
            throw .badEncoding(
                "\(pointer.split(separator: "/").last.map(String.init) ?? pointer) is not valid base64",
                pointer: pointer)
        }
        return Bytes([UInt8](data))
    }

    /// Exactly one of `text` / `b64` → the bytes. Both or neither: `22023`.
    static func one(_ text: String?, _ b64: String?, name: String, pointer: String) throws(ServerError) -> Bytes {
        switch (text, b64) {
        case (let t?, nil): return Bytes(t)
        case (nil, let b?): return try decodeBase64(b, pointer: pointer + "_b64")
        case (nil, nil):
            throw .invalid("exactly one of \(name) and \(name)_b64 is required; neither was given", pointer: pointer)
        case (_?, _?):
            throw .invalid("exactly one of \(name) and \(name)_b64 is required; both were given", pointer: pointer)
        }
    }

    /// At most one of `text` / `b64` (nil when neither).
    static func optional(_ text: String?, _ b64: String?, name: String, pointer: String) throws(ServerError) -> Bytes? {
        if text == nil && b64 == nil { return nil }
        return try one(text, b64, name: name, pointer: pointer)
    }

    /// The key bytes of a raw (still percent-encoded) URL path suffix such as `app/users/7` or `a%2F%00b`.
    /// Throws `22023` for a bad escape, an empty, `.` or `..` segment.
    static func decodePath(_ raw: Substring) throws(ServerError) -> Bytes {
        try decodePath(utf8: Array(raw.utf8))
    }

    /// ``decodePath(_:)`` over the path's bytes (the GET fast path passes the request's own bytes).
    static func decodePath<C: RandomAccessCollection<UInt8>>(utf8: C) throws(ServerError) -> Bytes
    where C.Index == Int {
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        // Segment checks on the raw form: an escaped `%2F` / `%2E` is not a separator / dot.
        for segment in utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if segment.isEmpty {
                throw .invalid("empty path segment in the key: write a leading, trailing or doubled / as %2F")
            }
            if segment.elementsEqual([UInt8(ascii: ".")])
                || segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")])
            {
                throw .invalid("a key segment of . or .. must be written %2E")
            }
        }
        let base = utf8.startIndex
        var i = 0
        while i < utf8.count {
            let c = utf8[base + i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < utf8.count, let hi = hexValue(utf8[base + i + 1]), let lo = hexValue(utf8[base + i + 2])
                else {
                    throw .invalid("bad percent-escape in the key at byte \(i)")
                }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(c)
                i += 1
            }
        }
        return Bytes(out)
    }

    /// Percent-encodes key bytes for a URL path (unreserved characters and `/` stay as they are).
    static func encodePath(_ key: Bytes) -> String {
        var out = ""
        for b in key.bytes {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"),
                UInt8(ascii: "."), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
