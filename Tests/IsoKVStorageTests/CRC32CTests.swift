import Testing
@testable import IsoKVStorage
import IsoKVTestSupport

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        // The check value of the CRC-32C catalogue entry and the RFC 3720 (iSCSI) appendix B.4 vectors.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test func slicingMatchesBytewiseAndIncremental() {
        var rng = SplitMix64(seed: 7)
        for length in 0..<200 {
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // A lazy map is not contiguous: it takes the byte-at-a-time path.
            let bytewise = CRC32C.checksum(data.lazy.map { $0 })
            #expect(CRC32C.checksum(data) == bytewise)
            let cut = length / 3
            var crc = CRC32C()
            crc.update(data[..<cut])
            crc.update(data[cut...])
            #expect(crc.value == bytewise)
        }
    }
}
