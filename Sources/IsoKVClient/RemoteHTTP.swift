import AsyncHTTPClient
import Foundation
import IsoKVCore
import NIOCore
import NIOHTTP1

/// One request/response exchange with the server, and the translation of problem bodies into `IsoKVError`.
struct RemoteHTTP: Sendable {
    let base: String
    let token: String?
    let client: HTTPClient
    /// Longest response body accepted (the server's largest value plus JSON overhead).
    static let maxResponseBytes = 64 << 20

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]

        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
        }

        /// The version in the `ETag` header (`"n"`).
        func etagVersion() throws -> UInt64 {
            guard let tag = headers.first(name: "ETag"),
                let v = UInt64(tag.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
            else {
                throw RemoteHTTP.protocolError("the response has no version ETag")
            }
            return v
        }
    }

    /// Sends a request; a status ≥ 400 that is not in `allow` throws the problem's `IsoKVError`.
    nonisolated(nonsending) func send(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, json: [String: Any]? = nil,
        headers: [(String, String)] = [], allow: Set<Int> = []
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            let data = try JSONSerialization.data(withJSONObject: json)
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        } else if let body {
            request.headers.add(name: "Content-Type", value: "application/octet-stream")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await client.execute(request, timeout: .seconds(120))
        let buffer = try await response.body.collect(upTo: Self.maxResponseBytes)
        let reply = Reply(
            status: Int(response.status.code), headers: response.headers, body: Array(buffer.readableBytesView))
        if reply.status >= 400 && !allow.contains(reply.status) { throw Self.error(from: reply) }
        return reply
    }

    /// The problem body's code, detail and key as an `IsoKVError`.
    static func error(from reply: Reply) -> IsoKVError {
        let j = reply.json
        guard let code = j["code"] as? String else {
            return IsoKVError(.init(rawValue: "XX000"), "HTTP \(reply.status) without a problem body")
        }
        var key: Bytes?
        if let k = j["key"] as? String {
            key = Bytes(k)
        } else if let k = j["key_b64"] as? String, let d = Data(base64Encoded: k) {
            key = Bytes([UInt8](d))
        }
        let other = (j["other_transaction"] as? NSNumber).map { TransactionID(rawValue: $0.uint64Value) }
        return IsoKVError(
            IsoKVError.Code(rawValue: code), j["detail"] as? String ?? "", key: key, otherTransaction: other)
    }

    static func protocolError(_ message: String) -> IsoKVError {
        IsoKVError(.init(rawValue: "XX000"), "unexpected answer from the server: \(message)")
    }

    /// The key as a URL path suffix when it can travel there verbatim: letters, digits, `-_~.` and `/` between
    /// non-empty segments other than `.` and `..`. Other keys go through the JSON endpoints (`key_b64`), because
    /// HTTP client libraries normalize or cut some percent-escapes (`%00`, dot segments).
    static func plainPath(_ key: Bytes) -> String? {
        guard !key.isEmpty else { return nil }
        for b in key.bytes {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"),
                UInt8(ascii: "."), UInt8(ascii: "/"):
                continue
            default:
                return nil
            }
        }
        let text = String(decoding: key.bytes, as: UTF8.self)
        for segment in text.split(separator: "/", omittingEmptySubsequences: false) {
            if segment.isEmpty || segment == "." || segment == ".." { return nil }
        }
        return text
    }

    static func b64(_ bytes: Bytes) -> String { Data(bytes.bytes).base64EncodedString() }

    /// `name` or `name_b64` of a JSON object as bytes.
    static func bytes(_ object: [String: Any], _ name: String) throws -> Bytes {
        if let s = object[name + "_b64"] as? String, let d = Data(base64Encoded: s) { return Bytes([UInt8](d)) }
        if let s = object[name] as? String { return Bytes(s) }
        throw protocolError("missing \(name)")
    }
}
