import Testing
@testable import IsoKVStorage
import IsoKVTestSupport

@Suite struct FormatTests {
    @Test func recordRoundTrip() throws {
        var rng = SplitMix64(seed: 1)
        for i in 0..<500 {
            let record = randomRecord(sequence: UInt64(i), rng: &rng, maxWrites: 8, maxValue: 300)
            var frame: [UInt8] = []
            try WALFormat.appendFrame(record, to: &frame)
            let decoded = try frame.withUnsafeBytes { buf -> CommitRecord in
                guard case .frame(let payload) = WALFormat.probeFrame(buf, at: 0) else {
                    throw RecordDecodeError(reason: "no frame", offset: 0)
                }
                #expect(payload.upperBound == buf.count)
                return try WALFormat.decodeCommitPayload(UnsafeRawBufferPointer(rebasing: buf[payload]))
            }
            #expect(decoded == record)
        }
    }

    @Test func everyTruncationAndByteFlipIsRejectedWithoutCrashing() throws {
        var rng = SplitMix64(seed: 2)
        let record = randomRecord(sequence: 9, rng: &rng, maxWrites: 3, maxValue: 20)
        var frame: [UInt8] = []
        try WALFormat.appendFrame(record, to: &frame)
        for cut in 0..<frame.count {
            let prefix = Array(frame[..<cut])
            prefix.withUnsafeBytes { buf in
                if case .frame = WALFormat.probeFrame(buf, at: 0) { Issue.record("truncated frame at \(cut) accepted") }
            }
        }
        for i in 0..<frame.count {
            for bit in 0..<8 {
                var damaged = frame
                damaged[i] ^= UInt8(1 << bit)
                damaged.withUnsafeBytes { buf in
                    if case .frame = WALFormat.probeFrame(buf, at: 0) {
                        Issue.record("flip at byte \(i) bit \(bit) accepted")
                    }
                }
            }
        }
        // The payload decoder alone (no checksum) must reject every truncation with an error, never trap.
        var payload: [UInt8] = []
        WALFormat.encodePayload(record, into: &payload)
        for cut in 0..<payload.count {
            #expect(throws: RecordDecodeError.self) {
                try Array(payload[..<cut]).withUnsafeBytes { try WALFormat.decodeCommitPayload($0) }
            }
        }
    }

    @Test func randomGarbageNeverCrashesTheDecoder() {
        var rng = SplitMix64(seed: 3)
        for _ in 0..<20_000 {
            var junk = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if !junk.isEmpty { junk[0] = WALFormat.kindCommit }
            _ = try? junk.withUnsafeBytes { try WALFormat.decodeCommitPayload($0) }
        }
        // A huge claimed write count is refused before any allocation.
        var big: [UInt8] = [WALFormat.kindCommit]
        big.appendLE(UInt64(1))
        big.appendLE(UInt32.max)
        #expect(throws: RecordDecodeError.self) { try big.withUnsafeBytes { try WALFormat.decodeCommitPayload($0) } }
    }

    @Test func oversizedRecordIsRefused() {
        let record = CommitRecord(
            sequence: 1,
            writes: [KeyWrite(key: [1], value: [UInt8](repeating: 0, count: WALFormat.maxPayloadBytes), version: 1)])
        var out: [UInt8] = []
        #expect(
            throws: StorageError.recordTooLarge(bytes: WALFormat.maxPayloadBytes + 31, limit: WALFormat.maxPayloadBytes)
        ) {
            try WALFormat.appendFrame(record, to: &out)
        }
        #expect(out.isEmpty)
    }

    @Test func oversizedKeyIsRefusedBeforeWriting() {
        let key = [UInt8](repeating: 1, count: WALFormat.maxKeyBytes + 1)
        var out: [UInt8] = []
        #expect(throws: StorageError.keyTooLarge(bytes: WALFormat.maxKeyBytes + 1, limit: WALFormat.maxKeyBytes)) {
            try WALFormat.appendFrame(
                CommitRecord(sequence: 1, writes: [KeyWrite(key: key, value: [], version: 1)]), to: &out)
        }
        #expect(out.isEmpty)
        // The largest allowed key round-trips.
        let record = CommitRecord(sequence: 1, writes: [KeyWrite(key: Array(key.dropLast()), value: nil, version: 1)])
        #expect(throws: Never.self) { try WALFormat.appendFrame(record, to: &out) }
    }
}
