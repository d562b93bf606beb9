import HTTPTypes
import Hummingbird
import IsoKVCore
@testable import IsoKVServer
import Testing

@Suite("Server error mapping")
struct ErrorMappingTests {
    /// The table of DESIGN.md ("Error mapping"): code → status, retryable.
    static let table: [(String, Int, Bool)] = [
        ("40001", 409, true), ("40P01", 409, true), ("55P03", 409, true), ("23505", 409, false),
        ("25P02", 409, false), ("25006", 409, false), ("55006", 409, false), ("22003", 409, false),
        ("42804", 409, false), ("3B001", 409, false), ("IK412", 412, false), ("54000", 413, false),
        ("IK414", 414, false), ("22023", 400, false), ("22P02", 400, false), ("02000", 404, false),
        ("25P01", 404, false), ("IK404", 404, false), ("IK405", 405, false), ("25P03", 410, true),
        ("25P04", 410, true), ("72000", 410, true), ("57P01", 503, true), ("53300", 503, true),
        ("28000", 401, false), ("58030", 500, false), ("XX000", 500, false),
        // Engine codes that only reach HTTP through an unexpected path are internal errors.
        ("XX001", 500, false), ("0A000", 500, false), ("55000", 500, false)
    ]

    @Test func everyCodeHasOneStatus() {
        for (code, status, retryable) in Self.table {
            let mapped = ErrorMapping.status(for: IsoKVError.Code(rawValue: code))
            #expect(Int(mapped.status.code) == status, "\(code)")
            #expect(mapped.retryable == retryable, "\(code)")
        }
        // A version mismatch is never retryable, whatever else changes.
        #expect(!ErrorMapping.status(for: .versionMismatch).retryable)
    }

    @Test func unexpectedErrorsBecomeXX000AndDecodingErrors22P02() {
        struct Strange: Error {}
        #expect(ErrorMapping.serverError(from: Strange()).code == .internalError)
        #expect(ErrorMapping.serverError(from: IsoKVError(.deadlockDetected, "x")).code == .deadlockDetected)
        let decoding = DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "bad"))
        #expect(ErrorMapping.serverError(from: decoding).code == .invalidTextRepresentation)
        let r = ErrorMapping.response(for: ServerError(.versionMismatch, "x", key: "k"), requestID: "r1")
        #expect(r.status == .preconditionFailed)
        #expect(r.headers[.contentType] == "application/problem+json")
    }
}
