import HTTPTypes
@testable import IsoKVServer
import Testing

@Suite("Server request ids and route templates")
struct RequestIDTests {
    @Test("fresh request ids share the process prefix, differ from each other, and are visible ASCII")
    func freshIDsAreDistinct() {
        let ids = (0..<1000).map { _ in ProblemMiddleware.requestID(from: HTTPFields()) }
        #expect(Set(ids).count == ids.count)
        let prefix = ids[0].prefix("req-".count + 16 + 1)
        #expect(prefix.hasPrefix("req-") && prefix.hasSuffix("-"))
        for id in ids {
            #expect(id.hasPrefix(prefix), "\(id)")
            #expect((1...128).contains(id.utf8.count) && id.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "\(id)")
        }
    }

    @Test("a sane client id is kept; an empty, long or non-ASCII one is replaced")
    func clientIDs() {
        #expect(ProblemMiddleware.requestID(from: [.xRequestID: "abc-1"]) == "abc-1")
        #expect(ProblemMiddleware.requestID(from: [.requestID: "r2"]) == "r2")
        for bad in [String(repeating: "x", count: 129), "a b", "é"] {
            let id = ProblemMiddleware.requestID(from: [.xRequestID: bad])
            #expect(id.hasPrefix("req-"), "\(bad) was kept")
        }
    }

    @Test("catch-all routes are reported as {key}; other templates unchanged")
    func routeTemplates() {
        #expect(ProblemMiddleware.routeTemplate("/v1/kv/**") == "/v1/kv/{key}")
        #expect(ProblemMiddleware.routeTemplate("/v1/incr/**") == "/v1/incr/{key}")
        #expect(ProblemMiddleware.routeTemplate("/v1/kv") == "/v1/kv")
        #expect(ProblemMiddleware.routeTemplate("/v1/txn/:id") == "/v1/txn/:id")
        #expect(ProblemMiddleware.routeTemplate(nil) == "unmatched")
        #expect(ProblemMiddleware.routeTemplate("NotFound") == "unmatched")
    }
}
