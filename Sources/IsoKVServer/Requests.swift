import Foundation
import HTTPTypes
import Hummingbird
import IsoKVCore

/// Reading requests: bodies (bounded), JSON (typed errors), the raw query string (byte-exact), keys (checked
/// against the limits and the reserved prefix).
enum RequestReader {
    /// The body, at most `limit` bytes: `54000` (413) with the limit beyond it.
    static func body(_ request: Request, limit: Int) async throws -> [UInt8] {
        var out: [UInt8] = []
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw ServerError.tooLarge("request body", limit: limit, actual: length)
        }
        for try await chunk in request.body {
            if out.count + chunk.readableBytes > limit {
                throw ServerError.tooLarge("request body", limit: limit, actual: out.count + chunk.readableBytes)
            }
            out += chunk.readableBytesView
        }
        return out
    }

    /// A raw value body (PUT): at most the value limit (and the body limit), `54000` naming the one exceeded.
    static func value(_ request: Request, key: Bytes, limits: ServerLimits) async throws -> Bytes {
        guard limits.maxValueBytes < limits.maxBodyBytes else {
            return Bytes(try await body(request, limit: limits.maxBodyBytes))
        }
        do {
            return Bytes(try await body(request, limit: limits.maxValueBytes))
        } catch let e as ServerError where e.code == .limitExceeded {
            throw ServerError.tooLarge(
                "value", limit: limits.maxValueBytes, actual: e.actual ?? limits.maxValueBytes + 1, key: key)
        }
    }

    /// Decodes a JSON body: `22P02` (400) when it is not JSON or not of the expected shape, naming the field.
    static func json<T: Decodable>(_ type: T.Type, from bytes: [UInt8], allowEmpty: Bool = false) throws -> T? {
        if bytes.isEmpty || bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            if allowEmpty { return nil }
            throw ServerError.badEncoding("a JSON body is required")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let DecodingError.typeMismatch(_, context) {
            throw ServerError.badEncoding(
                "wrong type at \(pointer(context.codingPath))", pointer: pointer(context.codingPath))
        } catch let DecodingError.valueNotFound(_, context) {
            throw ServerError.badEncoding(
                "null at \(pointer(context.codingPath))", pointer: pointer(context.codingPath))
        } catch let DecodingError.keyNotFound(key, context) {
            let p = pointer(context.codingPath + [key])
            throw ServerError.badEncoding("missing field \(p)", pointer: p)
        } catch let DecodingError.dataCorrupted(context) {
            let p = pointer(context.codingPath)
            throw ServerError.badEncoding(
                context.codingPath.isEmpty
                    ? "the body is not valid JSON"
                    : "invalid value at \(p): \(context.debugDescription)", pointer: p)
        } catch let e as ServerError {
            throw e
        } catch {
            throw ServerError.badEncoding("the body is not valid JSON")
        }
    }

    static func pointer(_ path: [any CodingKey]) -> String {
        "/" + path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: "/")
    }

    /// The query parameters, percent-decoded byte by byte (a `+` stays a `+`: write a space as `%20`). A bad
    /// escape is `22023`. Repeated names keep the last value.
    static func query(_ request: Request) throws(ServerError) -> Query {
        var params: [String: [UInt8]] = [:]
        guard let raw = request.uri.query, !raw.isEmpty else { return Query(params: params) }
        for pair in raw.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try percentDecode(parts[0], what: "query parameter name")
            let value =
                parts.count > 1
                ? try percentDecode(parts[1], what: "query parameter \(String(decoding: name, as: UTF8.self))") : []
            params[String(decoding: name, as: UTF8.self)] = value
        }
        return Query(params: params)
    }

    static func percentDecode(_ s: Substring, what: String) throws(ServerError) -> [UInt8] {
        let utf8 = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "%") {
                guard i + 2 < utf8.count,
                    let v = UInt8(String(decoding: utf8[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)
                else {
                    throw .invalid("bad percent-escape in \(what)")
                }
                out.append(v)
                i += 3
            } else {
                out.append(utf8[i])
                i += 1
            }
        }
        return out
    }

    /// Checks a key from JSON or the query: not empty, within the limit (`54000`, 413), not reserved (`22023`).
    static func check(key: Bytes, limits: ServerLimits, pointer: String? = nil) throws(ServerError) {
        if key.isEmpty { throw .invalid("the key must not be empty", pointer: pointer) }
        if key.count > limits.maxKeyBytes {
            var e = ServerError.tooLarge("key", limit: limits.maxKeyBytes, actual: key.count)
            e.pointer = pointer
            throw e
        }
        if Reserved.isReserved(key) {
            throw .invalid("keys starting with the bytes FF FF are reserved for the server", pointer: pointer)
        }
    }

    static func check(value: Bytes, key: Bytes, limits: ServerLimits, pointer: String? = nil) throws(ServerError) {
        if value.count > limits.maxValueBytes {
            var e = ServerError.tooLarge("value", limit: limits.maxValueBytes, actual: value.count, key: key)
            e.pointer = pointer
            throw e
        }
    }

    /// The key in a URL path after `prefix` (raw, percent-encoded): decoded and checked. Too long: 414.
    static func pathKey(_ request: Request, after prefix: String, limits: ServerLimits) throws(ServerError) -> Bytes {
        let path = request.uri.path
        guard path.hasPrefix(prefix) else { throw .invalid("missing key in the path") }
        let raw = path.dropFirst(prefix.count)
        if raw.isEmpty { throw .invalid("missing key in the path") }
        let key = try KeyText.decodePath(Substring(raw))
        if key.count > limits.maxKeyBytes {
            var e = ServerError(.uriTooLong, "key of \(key.count) bytes exceeds the limit of \(limits.maxKeyBytes)")
            e.limit = limits.maxKeyBytes
            e.actual = key.count
            throw e
        }
        try check(key: key, limits: limits)
        return key
    }
}

/// Decoded query parameters.
struct Query {
    var params: [String: [UInt8]]

    func has(_ name: String) -> Bool { params[name] != nil }

    /// A text parameter (must be UTF-8: `22023` otherwise).
    func text(_ name: String) throws(ServerError) -> String? {
        guard let bytes = params[name] else { return nil }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw .invalid("query parameter \(name) is not UTF-8; use \(name)_b64")
        }
        return s
    }

    /// `name` (raw bytes) or `name_b64` (base64), at most one.
    func bytes(_ name: String) throws(ServerError) -> Bytes? {
        switch (params[name], params[name + "_b64"]) {
        case (nil, nil): return nil
        case (let raw?, nil): return Bytes(raw)
        case (nil, let b64?):
            return try KeyText.decodeBase64(String(decoding: b64, as: UTF8.self), pointer: "?\(name)_b64")
        case (_?, _?): throw .invalid("give \(name) or \(name)_b64, not both")
        }
    }

    func bool(_ name: String) throws(ServerError) -> Bool {
        guard let s = try text(name) else { return false }
        switch s {
        case "", "true", "1": return true
        case "false", "0": return false
        default: throw .invalid("query parameter \(name) must be true or false")
        }
    }

    func int(_ name: String, in range: ClosedRange<Int>) throws(ServerError) -> Int? {
        guard let s = try text(name) else { return nil }
        guard let n = Int(s), range.contains(n) else {
            throw .invalid("query parameter \(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    /// `?encoding=b64` forces base64 for keys and values in JSON output.
    func forceBase64() throws(ServerError) -> Bool {
        switch try text("encoding") {
        case nil, "text": return false
        case "b64", "base64": return true
        default: throw .invalid("encoding must be b64 or text")
        }
    }
}

/// The key prefix the server keeps for itself (queue leases): bytes FF FF. User keys may not start with it and
/// scans never reach it.
enum Reserved {
    static let prefix: [UInt8] = [0xFF, 0xFF]
    static func isReserved(_ key: Bytes) -> Bool { key.bytes.starts(with: prefix) }
    /// The lease record of a queue job.
    static func leaseKey(_ job: Bytes) -> Bytes { Bytes(prefix + Array("isokv/lease/".utf8) + job.bytes) }

    /// `range` without the reserved keys.
    static func clamp(_ range: KeyRange) -> KeyRange {
        var r = range
        let limit = Bytes(prefix)
        if r.upper == nil || limit < r.upper! { r.upper = limit }
        return r
    }
}
