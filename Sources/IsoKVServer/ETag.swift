import HTTPTypes
import Hummingbird
import IsoKVCore

/// Strong entity tags: `"<version>"`, where the version is the commit sequence number of the key's last write
/// (never reused, also across a delete and re-create, so there is no ABA).
enum ETag {
    static func format(_ version: UInt64) -> String { "\"\(version)\"" }

    /// One parsed member of an `If-Match` / `If-None-Match` list.
    enum Member: Equatable {
        case any
        case strong(UInt64)
        /// `W/"N"`: IsoKV issues no weak tags; a weak tag never matches `If-Match` (strong comparison) and matches
        /// `If-None-Match` by its number (weak comparison, RFC 9110 13.1.2). Nil: not a version number.
        case weak(UInt64?)
    }

    /// Parses a header value: `*`, or a comma list of `"N"`, unquoted `N`, or `W/"…"`. Anything else (an empty
    /// list, an entity tag that is not a version number, `*` inside a list): `22023`.
    static func parse(_ value: String, header: String) throws(ServerError) -> [Member] {
        let trimmed = value.trimmingSpaces
        if trimmed == "*" { return [.any] }
        var members: [Member] = []
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            var tag = Substring(part).trimmingSpaces
            if tag.hasPrefix("W/") {
                tag = tag.dropFirst(2)
                guard tag.count >= 2, tag.first == "\"", tag.last == "\"" else {
                    throw .invalid("\(header): malformed weak entity tag \(part)")
                }
                members.append(.weak(UInt64(tag.dropFirst().dropLast())))
                continue
            }
            if tag.count >= 2, tag.first == "\"", tag.last == "\"" { tag = tag.dropFirst().dropLast() }
            guard !tag.isEmpty, tag.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt64(tag) else {
                throw .invalid(
                    "\(header): \(part.isEmpty ? "empty entity tag" : "entity tag \(part) is not a version")")
            }
            members.append(.strong(v))
        }
        return members
    }

    /// The preconditions of a request: `If-Match` and `If-None-Match`, parsed.
    struct Preconditions: Sendable {
        var ifMatch: [Member]?
        var ifNoneMatch: [Member]?

        var isEmpty: Bool { ifMatch == nil && ifNoneMatch == nil }

        init(ifMatch: [Member]? = nil, ifNoneMatch: [Member]? = nil) {
            self.ifMatch = ifMatch
            self.ifNoneMatch = ifNoneMatch
        }

        init(headers: HTTPFields) throws(ServerError) {
            if let v = headers[.ifMatch] { ifMatch = try ETag.parse(v, header: "If-Match") }
            if let v = headers[.ifNoneMatch] { ifNoneMatch = try ETag.parse(v, header: "If-None-Match") }
        }

        /// Whether a write may proceed given the key's current version (nil: absent). If-Match: `*` needs the key
        /// to exist, a list needs its version in the list (OR). If-None-Match: `*` needs it absent, a list needs
        /// its version in none of them (AND of "not equal").
        func allows(current: UInt64?) -> Bool {
            if let ifMatch {
                guard let current else { return false }
                let ok = ifMatch.contains { m in m == .any || m == .strong(current) }
                if !ok { return false }
            }
            if let ifNoneMatch, let current, Self.weakMatch(ifNoneMatch, current) { return false }
            return true
        }

        /// For GET: true when `If-None-Match` matches the current version (→ 304 Not Modified).
        func notModified(current: UInt64?) -> Bool {
            guard let ifNoneMatch, let current else { return false }
            return Self.weakMatch(ifNoneMatch, current)
        }

        /// `*`, or a member with the same number, weak or strong.
        private static func weakMatch(_ members: [Member], _ current: UInt64) -> Bool {
            members.contains { m in m == .any || m == .strong(current) || m == .weak(current) }
        }

        /// A readable form for a 412 message.
        var summary: String {
            var parts: [String] = []
            if let ifMatch { parts.append("If-Match " + ifMatch.map(Self.text).joined(separator: ", ")) }
            if let ifNoneMatch { parts.append("If-None-Match " + ifNoneMatch.map(Self.text).joined(separator: ", ")) }
            return parts.joined(separator: " and ")
        }

        private static func text(_ m: Member) -> String {
            switch m {
            case .any: "*"
            case .strong(let v): ETag.format(v)
            case .weak(let v): "W/\"\(v.map(String.init) ?? "?")\""
            }
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
